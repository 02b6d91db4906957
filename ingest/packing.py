"""Group commit's pure half: the alerts of one linger window, packed per partition of `alerts` into
`AlertBatch` records (schemas/batch.py). No Kafka, no asyncio: the producer hands in what waited and sends
what comes out.

Each alert arrives already serialised (its request did that), so a record is built by joining bytes: the
value is byte for byte `AlertBatch(alerts=[...]).model_dump_json(by_alias=True)`, `type` first, and its size
is known before it is built. Alerts keep the order they were accepted in; a partition's alerts beyond one
record's size or item limit go into further records of that partition, in order.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import TypeAdapter

from schemas.alert import Alert
from schemas.batch import MAX_BATCH_ITEMS, MAX_RECORD_BYTES, partition_of

Owner = TypeVar("Owner", bound=Hashable)


_HEAD = b'{"type":"alert_batch","version":1,"alerts":['
_TAIL = b"]}"
_ALERT: TypeAdapter[Alert] = TypeAdapter(Alert)


def alert_json(alert: Alert) -> bytes:
    """One alert as it appears inside an `AlertBatch` (and as its single-item record did)."""
    return _ALERT.dump_json(alert, by_alias=True)


@dataclass(frozen=True, slots=True)
class Item(Generic[Owner]):
    """One accepted alert waiting for its record: its fingerprint, its JSON, and whose it is (the request)."""

    fingerprint: str
    value: bytes
    owner: Owner


@dataclass(frozen=True, slots=True)
class Record(Generic[Owner]):
    """One `AlertBatch` record for `partition`: its value, how many alerts it holds, and the owners of those
    alerts, each once, in order of first appearance."""

    partition: int
    value: bytes
    count: int
    owners: tuple[Owner, ...]


def pack(
    items: Sequence[Item[Owner]], partitions: int, max_bytes: int = MAX_RECORD_BYTES, max_items: int = MAX_BATCH_ITEMS
) -> list[Record[Owner]]:
    """`items`, in accept order, as the fewest records per partition with at most `max_items` alerts and
    `max_bytes` of value each (an alert larger than that alone). Records of one partition come in order."""
    by_partition: dict[int, list[Item[Owner]]] = {}
    for item in items:
        by_partition.setdefault(partition_of(item.fingerprint.encode(), partitions), []).append(item)
    records: list[Record[Owner]] = []
    for partition, waiting in by_partition.items():
        chunk: list[Item[Owner]] = []
        size = len(_HEAD) + len(_TAIL)
        for item in waiting:
            added = len(item.value) + (1 if chunk else 0)  # the comma before it
            if chunk and (len(chunk) == max_items or size + added > max_bytes):
                records.append(_record(partition, chunk))
                chunk, size, added = [], len(_HEAD) + len(_TAIL), len(item.value)
            chunk.append(item)
            size += added
        records.append(_record(partition, chunk))
    return records


def _record(partition: int, chunk: list[Item[Owner]]) -> Record[Owner]:
    value = _HEAD + b",".join(item.value for item in chunk) + _TAIL
    return Record(partition, value, len(chunk), tuple(dict.fromkeys(item.owner for item in chunk)))
