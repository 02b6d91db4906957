"""Repairing records the stream skipped.

Offsets in our topics are contiguous (no transactions, no compaction), so within one partition a jump from
offset N to N+k means Faust never handed over N+1..N+k-1. faust-streaming has been seen to do that when it
seeks to committed offsets while a freshly assigned stream is already running. The stage wrapper notices the
jump and fetches the missing records with a plain consumer so they are processed, in order, before the
record that revealed the gap. When partitions are assigned, the group's committed offsets are the baseline,
so a stream that starts past them (records skipped right after a rebalance) is caught too. A false alarm (a partition that moved away and back) only re-processes
records the stages' position guards already know, which changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


@dataclass(frozen=True)
class FetchedMessage:
    """The parts of a Faust message the stage handlers read."""

    topic: str
    partition: int
    offset: int
    timestamp: float  # seconds, as Faust gives it
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class FetchedEvent:
    message: FetchedMessage

    @property
    def value(self) -> bytes:
        return self.message.value


class GapFetcher:
    """One plain consumer (no group), shared by the stages, used one gap at a time."""

    def __init__(self, bootstrap: str, client_kwargs: dict[str, Any] | None = None) -> None:
        self._bootstrap = bootstrap
        self._client_kwargs = client_kwargs or {}
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def fetch(self, topic: str, partition: int, start: int, end: int) -> list[FetchedEvent]:
        """Records start..end-1 of one partition, in order."""
        async with self._lock:
            consumer = await self._started()
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            found: list[FetchedEvent] = []
            while not found or found[-1].message.offset < end - 1:
                batch = await consumer.getmany(tp, timeout_ms=5000, max_records=end - start)
                records = batch.get(tp, [])
                if not records:
                    break  # nothing more (the records are gone): the caller logs what it could not get
                for r in records:
                    if r.offset < end:
                        found.append(
                            FetchedEvent(FetchedMessage(topic, partition, r.offset, r.timestamp / 1000, r.key, r.value))
                        )
            return found

    async def resume_points(self, group: str, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """Where `group` resumes each partition: its committed offset, or the first offset kept when it never
        committed (our groups read from the earliest). A stream that starts later than that skipped records."""
        tps = [TopicPartition(t, p) for t, p in partitions]
        if not tps:
            return {}
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._client_kwargs)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        finally:
            await admin.close()
        points = {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in committed.items()
            if meta is not None and meta.offset >= 0
        }
        missing = [tp for tp in tps if (tp.topic, tp.partition) not in points]
        if missing:
            async with self._lock:
                consumer = await self._started()
                for tp, offset in (await consumer.beginning_offsets(missing)).items():
                    points[(tp.topic, tp.partition)] = offset
        return points

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None, **self._client_kwargs
            )
            await self._consumer.start()
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
