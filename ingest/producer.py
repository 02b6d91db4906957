"""The durable producer: an alert is acknowledged to its sender only after Kafka acknowledged it (acks=all).

Alerts go to Kafka by group commit. A request's alerts wait in one queue with those of concurrent requests;
one flush packs all that waits per partition of `alerts` into `AlertBatch` records (ingest/packing.py) and
hands those to aiokafka in order. A request is answered once every record holding one of its alerts is
acknowledged; a record that fails fails exactly the requests with alerts in it. Flushes run one at a time, in
accept order, so a partition's records reach aiokafka (and Kafka, idempotent) in the order their alerts were
accepted.

When a flush is due: at once while Kafka has nothing of ours to acknowledge, else when it has acknowledged
all of it or `batch_linger_ms` after the first waiting alert arrived, whichever comes first. PostgreSQL's
`commit_delay` waits only when other commits are in progress (`commit_siblings`) for the same reason: a
fixed wait costs every request at low load (measured: 4 clients posting one alert each got 300 instead of
480 alerts/s with a fixed 5 ms), while under load the wait for Kafka's acknowledgement packs the records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
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

from adapters.metrics import ALERTS_PER_RECORD, KAFKA_UP, PRODUCE_LATENCY
from ingest.packing import Item, Record, alert_json, pack
from schemas import Alert
from schemas.errors import FirebreakError

log = logging.getLogger("firebreak.ingest.producer")

ALERTS_TOPIC = "alerts"

# Errors after which an idempotent producer stays broken: aiokafka cannot bump its epoch, so every later send
# fails the same way. Seen after a broker restart while batches were in flight (OutOfOrderSequenceNumber).
PRODUCER_BROKEN = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    ProducerFenced,
)


class KafkaUnavailable(FirebreakError):
    """Kafka did not acknowledge in time; the sender should retry."""


class _Ticket:
    """One request's wait in the group commit: done once each record holding its alerts is acknowledged, or
    failed by the first of them that fails. Cancelled when the request stopped waiting (timeout)."""

    __slots__ = ("future", "records")

    def __init__(self) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.records = 0  # records holding its alerts not acknowledged yet

    def acked(self) -> None:
        self.records -= 1
        if self.records == 0 and not self.future.done():
            self.future.set_result(None)

    def fail(self, reason: str) -> None:
        if not self.future.done():
            self.future.set_exception(KafkaUnavailable(reason))


class DurableProducer:
    """Produces records and returns only once Kafka acknowledged all of them (acks=all, idempotent); alerts
    of concurrent requests share records (group commit, `send_alerts`)."""

    def __init__(
        self,
        bootstrap: str,
        timeout: float,
        linger_ms: int,
        batch_linger_ms: int,
        probe_topic: str = ALERTS_TOPIC,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._client_kwargs = client_kwargs or {}
        self._probe_topic = probe_topic
        self._timeout = timeout
        self._linger_ms = linger_ms
        self._batch_linger = batch_linger_ms / 1000
        self._producer: AIOKafkaProducer | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._waiting: list[Item[_Ticket]] = []  # accepted alerts not flushed yet, in accept order
        self._first_waiting_at = 0.0  # when the oldest of them arrived (monotonic)
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._stopping = False
        # Records handed to the current aiokafka producer and neither acknowledged nor failed yet (a replaced
        # producer's may never settle: they are forgotten with it).
        self._unsettled: set[asyncio.Future[Any]] = set()
        self._flush_now = asyncio.Event()  # set while nothing is unsettled, and by stop()
        self._flush_now.set()
        self._partitions = 0  # partitions of `alerts` at the last flush

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
        self._flusher = asyncio.create_task(self._flush_forever())

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
        self._unsettled.clear()
        self._flush_now.set()
        self._closing = asyncio.create_task(broken.stop())
        self._connect_task = asyncio.create_task(self._connect_forever())

    async def stop(self) -> None:
        """Refuse new alerts, flush the waiting ones at once, then stop the producer, which waits for what is
        in flight: every request still waiting gets its answer (202 or 503) before the process exits."""
        self._stopping = True
        self._flush_now.set()
        self._wake.set()
        if self._flusher is not None:
            try:
                await asyncio.wait_for(self._flusher, timeout=self._timeout)
            except TimeoutError:
                log.warning(
                    "alerts still waiting for Kafka after %g s at shutdown; their senders get 503", self._timeout
                )
        for item in self._waiting:
            item.owner.fail("ingest is shutting down; retry")
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
        except (TimeoutError, KafkaError):
            return False
        return bool(partitions)

    async def send_alerts(self, alerts: list[Alert]) -> None:
        """Produce every alert to `alerts`, packed with those of concurrent requests (group commit), and wait
        until Kafka acknowledged every record holding one of them, `timeout` seconds at most."""
        if self._producer is None or self._stopping:
            raise KafkaUnavailable("not connected to Kafka yet" if not self._stopping else "ingest is shutting down")
        if not alerts:
            return
        started = time.perf_counter()
        ticket = _Ticket()
        if not self._waiting:
            self._first_waiting_at = time.monotonic()
        self._waiting += [Item(a.fingerprint, alert_json(a), ticket) for a in alerts]
        self._wake.set()
        try:
            async with asyncio.timeout(self._timeout):
                await ticket.future  # a timeout cancels it: a flush still to come leaves its alerts out
        except TimeoutError as exc:
            KAFKA_UP.set(0)
            raise KafkaUnavailable(f"Kafka did not acknowledge within {self._timeout:g} s: {exc!r}") from exc
        PRODUCE_LATENCY.observe(time.perf_counter() - started)

    async def _flush_forever(self) -> None:
        """The one flusher: when a flush is due (`_linger`), flushes all that waits."""
        while True:
            await self._wake.wait()
            await self._linger()
            self._wake.clear()
            items, self._waiting = self._waiting, []
            if items:
                try:
                    await self._flush(items)
                except Exception as exc:  # a bug here must not leave requests waiting for the timeout
                    log.exception("group commit failed; answering its requests 503")
                    for item in items:
                        item.owner.fail(f"ingest failed to produce: {exc!r}")
            if self._stopping and not self._waiting:
                return

    async def _linger(self) -> None:
        """Until Kafka has acknowledged (or failed) every record handed to it, but no longer than
        `batch_linger_ms` after the first waiting alert arrived; not at all once stop() was called."""
        if self._stopping:
            return
        try:
            async with asyncio.timeout(max(0.0, self._first_waiting_at + self._batch_linger - time.monotonic())):
                await self._flush_now.wait()
        except TimeoutError:
            pass

    async def _flush(self, items: list[Item[_Ticket]]) -> None:
        """Pack the alerts whose requests still wait and hand the records to aiokafka, in order."""
        items = [item for item in items if not item.owner.future.done()]
        producer = self._producer
        if not items:
            return
        if producer is None:
            for item in items:
                item.owner.fail("not connected to Kafka (the producer is being replaced); retry")
            return
        try:
            async with asyncio.timeout(self._timeout):
                partitions = len(await producer.partitions_for(ALERTS_TOPIC))  # aiokafka's metadata; refreshed by it
        except (TimeoutError, KafkaError) as exc:
            KAFKA_UP.set(0)
            for item in items:
                item.owner.fail(f"no metadata for topic {ALERTS_TOPIC} within {self._timeout:g} s: {exc!r}")
            return
        if partitions != self._partitions:
            log.info("topic %s has %d partitions (was %d)", ALERTS_TOPIC, partitions, self._partitions)
            self._partitions = partitions
        records = pack(items, partitions)
        for record in records:  # every count before the first send: one record's ack must not answer early
            for ticket in record.owners:
                ticket.records += 1
        for record in records:
            if all(ticket.future.done() for ticket in record.owners):
                continue  # every request of it stopped waiting or failed: nobody is answered for these alerts
            try:
                future = await producer.send(ALERTS_TOPIC, value=record.value, key=None, partition=record.partition)
            except KafkaError as exc:
                self._failed(producer, record, exc)
                continue
            if producer is self._producer:
                self._unsettled.add(future)
                self._flush_now.clear()
            future.add_done_callback(partial(self._acknowledged, producer, record))

    def _acknowledged(self, producer: AIOKafkaProducer, record: Record[_Ticket], future: asyncio.Future[Any]) -> None:
        self._unsettled.discard(future)
        if not self._unsettled:
            self._flush_now.set()
        exc = KafkaError("the produce was cancelled") if future.cancelled() else future.exception()
        if exc is not None:
            self._failed(producer, record, exc)
            return
        KAFKA_UP.set(1)
        ALERTS_PER_RECORD.observe(record.count)
        for ticket in record.owners:
            ticket.acked()

    def _failed(self, producer: AIOKafkaProducer, record: Record[_Ticket], exc: BaseException) -> None:
        """A record Kafka did not take: its requests answer 503 (the others of its flush are unaffected)."""
        KAFKA_UP.set(0)
        if isinstance(exc, PRODUCER_BROKEN) and self._producer is producer:
            self._replace(producer, exc)
        for ticket in record.owners:
            ticket.fail(f"Kafka did not acknowledge: {exc!r}")

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
