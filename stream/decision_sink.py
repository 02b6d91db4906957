"""The `decisions` topic into Redis, in batches: a plain consumer beside the Faust stages, not a stage.

The decision log is a sink (nothing downstream reads it from Kafka), so it does not need Faust's per-record
machinery, which costs more than the fold itself (BENCHMARKS.md: as a Faust agent the log halved the stream's
throughput). This consumer reads up to 1,000 records at a time, writes them in one Redis pipeline, then
commits: at least once, and a decision written twice is stored once (adapters/decision_log.py). Workers
share the partitions through their own consumer group, `<app_id>-decisions`.

A record that does not decode is logged, counted and sent to `dead-letter`; Redis unavailable makes the
batch wait and retry (nothing is committed meanwhile). A commit refused because the group rebalanced while
the batch was being written is not an error: the partitions' new owner reads the batch again and the log
stores it once. Nothing this consumer meets stops the worker: it is a sink, and the stream stages beside it
must keep running, so any other failure restarts the consumer after a pause.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError
from pydantic import ValidationError

from adapters.decision_log import DecisionLog
from adapters.metrics import DEAD_LETTERS, REDIS_WAITS
from adapters.redis_errors import REDIS_UNAVAILABLE, redis_backoff
from schemas.decision import Decision, DecisionBatch

log = logging.getLogger("firebreak.decisions")

BATCH = 1000
RESTART_SECONDS = 5.0

DeadLetter = Callable[[bytes | None, bytes, str, str], Awaitable[None]]


class SinkSettings(Protocol):
    """What the sink reads of the settings (firebreak.settings.Settings has these options)."""

    app_id: str
    kafka_bootstrap: str
    worker_session_timeout_seconds: float


class DecisionSink:
    """The consumer above; `client_kwargs` are aiokafka's connection options (security protocol, SASL, TLS)."""

    def __init__(
        self,
        settings: SinkSettings,
        log_: DecisionLog,
        dead_letter: DeadLetter,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.client_kwargs = client_kwargs or {}
        self.log = log_
        self.dead_letter = dead_letter

    async def run_forever(self) -> None:
        while True:
            consumer = self.new_consumer()
            try:
                await consumer.start()
                log.info("decision log consumer started (group %s-decisions)", self.settings.app_id)
                while True:
                    await self.step(consumer)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "decision log consumer failed; restarting it in %g s (the stream stages carry on, and "
                    "uncommitted decisions are read again)",
                    RESTART_SECONDS,
                )
            finally:
                await _quietly_stop(consumer)
            await asyncio.sleep(RESTART_SECONDS)

    def new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            "decisions",
            bootstrap_servers=self.settings.kafka_bootstrap.split(","),
            group_id=f"{self.settings.app_id}-decisions",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.settings.worker_session_timeout_seconds * 1000),
            **self.client_kwargs,
        )

    async def step(self, consumer: AIOKafkaConsumer) -> int:
        """Read, write and commit one batch; return how many records it held."""
        batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
        records = [r for partition in batches.values() for r in partition]
        if not records:
            return 0
        decisions: list[Decision] = []
        for record in records:
            try:
                decisions += DecisionBatch.model_validate_json(record.value).decisions
            except ValidationError as exc:
                source = f"decisions/{record.partition}/{record.offset}"
                DEAD_LETTERS.labels("explain", "undecodable").inc()
                log.error("dead-letter stage=explain reason=undecodable source=%s: %s", source, exc.errors()[:1])
                await self.dead_letter(record.key, record.value or b"", "undecodable", source)
        await self.write(decisions)
        try:
            await consumer.commit()
        except (CommitFailedError, RebalanceInProgressError, IllegalStateError) as exc:
            log.warning(
                "a batch of %d decision records was written but not committed (%s): the group rebalanced, "
                "so the partitions' owner reads it again and the log stores each decision once",
                len(records),
                type(exc).__name__,
            )
        return len(records)

    async def write(self, decisions: list[Decision]) -> None:
        attempt = 0
        while True:
            try:
                await self.log.record(decisions)
                return
            except REDIS_UNAVAILABLE as exc:
                wait = redis_backoff(attempt)
                attempt += 1
                REDIS_WAITS.inc()
                log.warning(
                    "Redis unavailable (%s); %d decisions wait %.1f s (attempt %d)", exc, len(decisions), wait, attempt
                )
                await asyncio.sleep(wait)


async def _quietly_stop(consumer: AIOKafkaConsumer) -> None:
    try:
        await consumer.stop()
    except Exception as exc:  # noqa: BLE001 - a consumer that failed to start or lost its broker still has to let go
        log.warning("decision log consumer did not stop cleanly: %s", exc)
