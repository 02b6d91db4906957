"""Packed records: many items of one partition in one Kafka record (DESIGN.md, "batch everything that crosses a
boundary").

Faust pays ~110 µs per record on this project's machines and a table write costs its own changelog record, so a
record per alert caps a stage near a few thousand alerts a second (BENCHMARKS.md). Ingest therefore packs the
alerts of concurrent requests that go to one partition of `alerts` into one `AlertBatch` record, and the stages
pack their outputs per target partition the same way (`GroupInputBatch` on `alert-events`,
`IncidentEventBatch` on `incident-events`; decisions already travel as `DecisionBatch`).

Every item of a packed record belongs to the record's partition: its key hashes there under Kafka's default
partitioner (`partition_of`, murmur2 as the Java client and aiokafka compute it), so the single-item records
of the previous version and packed ones keep each key in one partition, in order.

Each item has a position in its partition: `position(offset, index)`, increasing in the order items were
written. The stages' redelivery memory (correlation/redelivery.py) keys on it as it keyed on offsets.

Records are told apart by the start of their JSON: a packed record starts with `{"type":"<name>"`, written
first by `model_dump_json`. Anything else on a topic is the single-item record of the previous version, still
read (an upgrade must not strand records written before it).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Literal

from aiokafka.partitioner import murmur2 as _untyped_murmur2
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.alert import Alert, AlertRelease
from schemas.incident import GroupInput, IncidentEvent

# aiokafka ships no types (no py.typed, no stub package): its murmur2 takes the key's bytes and returns an int.
murmur2: Callable[[bytes], int] = _untyped_murmur2

MAX_BATCH_ITEMS = 10_000  # items per packed record; the position scale below leaves room for ten times that
# The value of one packed record at most. A broker refuses a record batch above its `message.max.bytes`
# (1,048,588 bytes unless configured otherwise), Faust's producer one above 1,000,000 bytes with key and
# headers, and a record refused for its size is refused again on every retry: packers cut below both. A single
# item larger than this still travels alone, as it did before packing.
MAX_RECORD_BYTES = 900_000
POSITION_SCALE = 100_000


def position(offset: int, index: int) -> int:
    """The position of item `index` (0-based) of the record at `offset`: increasing within a partition in write
    order. A single-item record's item is at `offset * POSITION_SCALE`.

    Raises ValueError for an index beyond the scale (a packed record holds at most MAX_BATCH_ITEMS items)."""
    if not 0 <= index < POSITION_SCALE:
        raise ValueError(f"item index {index} outside 0..{POSITION_SCALE - 1}")
    return offset * POSITION_SCALE + index


@lru_cache(maxsize=65_536)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` among `partitions` (murmur2, positive, modulo), as
    the Java client and aiokafka's `DefaultPartitioner` compute it for a keyed record. Cached: murmur2 is pure
    Python here, and the same fingerprints and correlation keys come back all the time."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class _Packed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def is_one(cls, value: bytes) -> bool:
        """Whether a record's value is one of these: its JSON starts with this model's `type` (written first)."""
        return value.startswith(b'{"type":"%s"' % cls.model_fields["type"].default.encode())


class AlertBatch(_Packed):
    """A record on `alerts` holding the alerts of one partition, from one or more ingest requests, in the order
    they were accepted. Each alert's fingerprint hashes to the record's partition (`partition_of`)."""

    type: Literal["alert_batch"] = "alert_batch"
    version: Literal[1] = 1
    alerts: list[Alert] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class GroupInputBatch(_Packed):
    """A record on `alert-events` holding the grouping stage's inputs of one partition (the dedup stage's alert
    events of one input record, in order), each keyed by its correlation key."""

    type: Literal["group_input_batch"] = "group_input_batch"
    version: Literal[1] = 1
    items: list[GroupInput] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


class IncidentEventBatch(_Packed):
    """A record on `incident-events` holding incident events of one partition, in order, each keyed by its
    incident id."""

    type: Literal["incident_event_batch"] = "incident_event_batch"
    version: Literal[1] = 1
    events: list[IncidentEvent] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)


_GROUP_INPUT: TypeAdapter[GroupInput] = TypeAdapter(GroupInput)


def alert_records(value: bytes) -> list[Alert | AlertRelease]:
    """The items of one `alerts` record: an `AlertBatch`'s alerts, or the one `Alert` or `AlertRelease` of a
    single-item record. Raises pydantic's ValidationError for anything else."""
    value = value or b""  # a tombstone or empty record: refused below like any other bad record
    if AlertBatch.is_one(value):
        return list(AlertBatch.model_validate_json(value).alerts)
    if AlertRelease.is_one(value):
        return [AlertRelease.model_validate_json(value)]
    return [Alert.model_validate_json(value)]


def group_inputs(value: bytes) -> list[GroupInput]:
    """The items of one `alert-events` record: a `GroupInputBatch`'s items, or one `AlertEvent`,
    `IncidentCommand` or `Tick`. Raises pydantic's ValidationError for anything else."""
    value = value or b""
    if GroupInputBatch.is_one(value):
        return list(GroupInputBatch.model_validate_json(value).items)
    return [_GROUP_INPUT.validate_json(value)]


def incident_events(value: bytes) -> list[IncidentEvent]:
    """The events of one `incident-events` record: an `IncidentEventBatch`'s events, or one `IncidentEvent`.
    Raises pydantic's ValidationError for anything else."""
    value = value or b""
    if IncidentEventBatch.is_one(value):
        return list(IncidentEventBatch.model_validate_json(value).events)
    return [IncidentEvent.model_validate_json(value)]


def _packer(prefix: bytes, suffix: bytes = b"]}") -> Callable[[list[bytes]], bytes]:
    def pack(items: list[bytes]) -> bytes:
        return prefix + b",".join(items) + suffix

    return pack


# Packed records built from their items' own JSON (each item's `model_dump_json`), without building the
# envelope model: the bytes are the envelope's JSON (tests/unit/test_batch_records.py).
pack_alerts = _packer(b'{"type":"alert_batch","version":1,"alerts":[')  # items dumped by_alias
pack_group_inputs = _packer(b'{"type":"group_input_batch","version":1,"items":[')
pack_incident_events = _packer(b'{"type":"incident_event_batch","version":1,"events":[')
pack_decisions = _packer(b'{"decisions":[')
