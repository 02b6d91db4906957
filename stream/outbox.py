"""What one input record emitted, packed per target partition and sent as one record per partition.

Items are added with the key that places them (Kafka's default partitioner, `schemas.batch.partition_of`), so a
key's items land where a single-item record of the same key would, in the order they were added. `flush` packs
each partition's items into one record (split at `MAX_BATCH_ITEMS` items or `MAX_RECORD_BYTES`) and hands it to
Faust's producer, which Faust flushes before it commits the input's offset: a committed input's output is on
Kafka, as with single-item records.
"""

from __future__ import annotations

from collections.abc import Callable

import faust

from schemas.batch import (
    MAX_BATCH_ITEMS,
    MAX_RECORD_BYTES,
    pack_decisions,
    pack_group_inputs,
    pack_incident_events,
    partition_of,
)

# topic -> how its items are packed; a topic not named here gets one record per item (releases on `alerts`)
PACKERS: dict[str, Callable[[list[bytes]], bytes]] = {
    "alert-events": pack_group_inputs,
    "incident-events": pack_incident_events,
    "decisions": pack_decisions,
}


class PartitionCounts:
    """Partitions per topic, from the producer's metadata (fetched once per topic, then read from its cache)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    async def of(self, topic: str) -> int:
        producer = self.app.producer._ensure_producer()  # the aiokafka producer under Faust's
        partitions = producer._metadata.partitions_for_topic(topic)
        if not partitions:
            partitions = await producer.partitions_for(topic)
        return len(partitions)


def chunks(items: list[tuple[bytes, bytes]]) -> list[list[tuple[bytes, bytes]]]:
    """(key, value) `items` cut into runs of at most MAX_BATCH_ITEMS items and about MAX_RECORD_BYTES bytes of
    values, in order."""
    runs: list[list[tuple[bytes, bytes]]] = [[]]
    size = 0
    for item in items:
        if runs[-1] and (len(runs[-1]) >= MAX_BATCH_ITEMS or size + len(item[1]) > MAX_RECORD_BYTES):
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += len(item[1]) + 1
    return runs if runs[0] else []


class Outbox:
    """Outputs of one input record: `add` them in order, then `flush` once."""

    def __init__(self, app: faust.App, counts: PartitionCounts) -> None:
        self.app = app
        self.counts = counts
        self._items: dict[str, list[tuple[bytes, bytes]]] = {}  # topic -> (key, item JSON) in order
        self.records = 0  # records sent by the last flush
        self.refused: list[
            tuple[str, bytes, bytes]
        ] = []  # (topic, key, item) of the last flush too large for any record

    def add(self, topic: str, key: str, value: bytes) -> None:
        self._items.setdefault(topic, []).append((key.encode(), value))

    async def flush(self) -> None:
        """Send everything added, packed; an item too large for any record on its own is not sent but left in
        `refused` for the stage to dead-letter (Kafka would refuse it on every retry)."""
        self.records = 0
        self.refused = []
        for topic, items in self._items.items():
            pack = PACKERS.get(topic)
            if pack is None:
                for key, value in items:
                    await self._send(topic, key, value, None)
                continue
            count = await self.counts.of(topic)
            by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
            for key, value in items:
                by_partition.setdefault(partition_of(key, count), []).append((key, value))
            for partition, placed in by_partition.items():
                for run in chunks(placed):
                    if len(run) == 1 and len(run[0][1]) > MAX_RECORD_BYTES:
                        self.refused.append((topic, *run[0]))
                        continue
                    await self._send(topic, run[0][0], pack([value for _, value in run]), partition)
        self._items.clear()

    async def _send(self, topic: str, key: bytes, value: bytes, partition: int | None) -> None:
        # Straight to the producer: Faust's `Topic.send` costs as much again in futures and callbacks.
        await self.app.producer.send(topic, key, value, partition, None, None)
        self.records += 1
