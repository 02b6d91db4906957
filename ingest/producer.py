"""The durable producer: an alert is acknowledged to its sender only after Kafka acknowledged it (acks=all)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    UnknownProducerId,
)

from firebreak.metrics import KAFKA_UP, PRODUCE_LATENCY
from schemas import Alert

log = logging.getLogger("firebreak.ingest.producer")


# Errors after which an idempotent producer stays broken: aiokafka cannot bump its epoch, so every later send
# fails the same way. Seen after a broker restart while batches were in flight (OutOfOrderSequenceNumber).
PRODUCER_BROKEN = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, InvalidProducerIdMapping,
                   ProducerFenced)


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge in time; the sender should retry."""


class DurableProducer:
    """Produces records and returns only once Kafka acknowledged all of them (acks=all, idempotent)."""

    def __init__(self, bootstrap: str, timeout: float, linger_ms: int, probe_topic: str = "alerts",
                 client_kwargs: dict[str, Any] | None = None) -> None:
        self._bootstrap = bootstrap
        self._client_kwargs = client_kwargs or {}
        self._probe_topic = probe_topic
        self._timeout = timeout
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,
            request_timeout_ms=int(self._timeout * 1000),
            max_request_size=8 * 1024 * 1024,
            **self._client_kwargs,
        )

    async def start(self) -> None:
        """Connect in the background; until connected, sends raise KafkaUnavailable (HTTP 503)."""
        self._connect_task = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            producer = self._new_producer()
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                log.warning("kafka not reachable at %s (%s); retrying in %.1f s", self._bootstrap, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            KAFKA_UP.set(1)
            log.info("connected to kafka at %s", self._bootstrap)
            return

    def _replace(self, broken: AIOKafkaProducer, exc: BaseException) -> None:
        """Drop a producer that cannot recover and connect a new one (a new producer id); until it is
        connected, sends answer 503. The senders retry, and duplicates are absorbed downstream (dedup)."""
        log.warning("kafka producer unusable after %r; replacing it", exc)
        self._producer = None
        self._closing = asyncio.create_task(broken.stop())
        self._connect_task = asyncio.create_task(self._connect_forever())

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
        if self._producer is not None:
            await self._producer.stop()  # flushes what is in flight
        KAFKA_UP.set(0)

    async def ready(self) -> bool:
        """Kafka answers a metadata request for the alerts topic."""
        if self._producer is None:
            return False
        try:
            partitions = await asyncio.wait_for(self._producer.partitions_for(self._probe_topic), timeout=2.0)
        except (asyncio.TimeoutError, KafkaError):
            return False
        return bool(partitions)

    async def send_alerts(self, alerts: list[Alert]) -> None:
        """Produce every alert to `alerts`, keyed by fingerprint."""
        await self.send("alerts", [(a.fingerprint.encode(), a.model_dump_json(by_alias=True).encode()) for a in alerts])

    async def send(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        """Produce (key, value) records and wait until Kafka acknowledged all of them."""
        producer = self._producer
        if producer is None:
            raise KafkaUnavailable("not connected to Kafka yet")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                futures = [await producer.send(topic, value=value, key=key) for key, value in records]
                await asyncio.gather(*futures)
        except (TimeoutError, KafkaError) as exc:
            KAFKA_UP.set(0)
            if isinstance(exc, PRODUCER_BROKEN) and self._producer is producer:
                self._replace(producer, exc)
            raise KafkaUnavailable(f"Kafka did not acknowledge within {self._timeout:g} s: {exc!r}") from exc
        KAFKA_UP.set(1)
        PRODUCE_LATENCY.observe(time.perf_counter() - started)
