"""Repairing records the stream skipped.

Offsets in our topics are contiguous (no transactions, no compaction), so within one partition a jump from
offset N to N+k means Faust never handed over N+1..N+k-1. faust-streaming has been seen to do that when it
seeks to committed offsets while a freshly assigned stream is already running. The stage wrapper notices the
jump and fetches the missing records with a plain consumer so they are processed, in order, before the
record that revealed the gap. A false alarm (a partition that moved away and back) only re-processes
records the stages' position guards already know, which changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


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
            if self._consumer is None:
                self._consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                                  group_id=None, **self._client_kwargs)
                await self._consumer.start()
            tp = TopicPartition(topic, partition)
            self._consumer.assign([tp])
            self._consumer.seek(tp, start)
            found: list[FetchedEvent] = []
            while not found or found[-1].message.offset < end - 1:
                batch = await self._consumer.getmany(tp, timeout_ms=5000, max_records=end - start)
                records = batch.get(tp, [])
                if not records:
                    break  # nothing more (the records are gone): the caller logs what it could not get
                for r in records:
                    if r.offset < end:
                        found.append(FetchedEvent(FetchedMessage(topic, partition, r.offset, r.timestamp / 1000, r.key, r.value)))
            return found

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
