"""Packed records (schemas/batch.py) and the stages that fold them (stream/): the packed bytes are the envelope's
JSON, old single-item records still read, positions order items, partitions agree with Kafka's, a record's
alerts fold exactly as the same alerts one record each, and a pure re-send costs no changelog write."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import pytest
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from adapters.entries import FLUSH_AFTER_SECONDS, Entries
from correlation.dedup import FingerprintState, counted_only, dedup
from correlation.policy import Policy, PolicySet
from correlation.rules import default_rules
from schemas import AlertRelease, IncidentCommand, Tick
from schemas.batch import (
    MAX_BATCH_ITEMS,
    AlertBatch,
    GroupInputBatch,
    alert_records,
    group_inputs,
    incident_events,
    pack_alerts,
    pack_group_inputs,
    partition_of,
    position,
)
from stream.dedup import DedupStage
from stream.outbox import MAX_RECORD_BYTES, chunks
from stream.suppression import Suppression
from tests.factories import T0, alert, at

RULES = default_rules()


def test_packed_bytes_are_the_envelope_models_json_and_read_back():
    alerts = [alert(instance=f"i-{n}", alertname="A") for n in range(3)]
    packed = pack_alerts([a.model_dump_json(by_alias=True).encode() for a in alerts])
    assert json.loads(packed) == json.loads(AlertBatch(alerts=alerts).model_dump_json(by_alias=True))
    assert AlertBatch.is_one(packed) and alert_records(packed) == alerts
    tick, command = (
        Tick(at=at(1)),
        IncidentCommand(action="resolve", incident_id="i", correlation_key="k", actor="ana", at=at(2)),
    )
    packed = pack_group_inputs([tick.model_dump_json().encode(), command.model_dump_json().encode()])
    assert json.loads(packed) == json.loads(GroupInputBatch(items=[tick, command]).model_dump_json())
    assert group_inputs(packed) == [tick, command]


def test_single_item_records_of_the_previous_version_still_read():
    one = alert()
    assert alert_records(one.model_dump_json(by_alias=True).encode()) == [one]
    release = AlertRelease(fingerprint=one.fingerprint, at=at(3), incident_id="inc")
    assert alert_records(release.model_dump_json().encode()) == [release]
    assert group_inputs(Tick(at=at(1)).model_dump_json().encode()) == [Tick(at=at(1))]


def test_a_record_that_is_neither_is_refused_with_the_field():
    with pytest.raises(ValidationError):
        alert_records(b'{"type":"alert_batch","version":1,"alerts":[{"labels":{}}]}')
    with pytest.raises(ValidationError):
        incident_events(b'{"type":"incident_event_batch","version":2,"events":[]}')
    for unpack in (alert_records, group_inputs, incident_events):  # tombstones and empty records too
        for value in (None, b""):
            with pytest.raises(ValidationError):
                unpack(value)  # type: ignore[arg-type]


def test_positions_increase_in_write_order_across_records():
    assert position(7, 0) < position(7, 1) < position(7, MAX_BATCH_ITEMS - 1) < position(8, 0)
    with pytest.raises(ValueError):
        position(1, 100_000)


@pytest.mark.parametrize("count", [1, 3, 4, 12])
def test_partitions_agree_with_kafkas_default_partitioner(count):
    partitioner, partitions = DefaultPartitioner(), list(range(count))
    for n in range(200):
        key = f"fingerprint-{n}".encode()
        assert partition_of(key, count) == partitioner(key, partitions, partitions)


def test_outputs_are_cut_by_count_and_by_size_in_order():
    items = [(b"k", b"x" * 10)] * (MAX_BATCH_ITEMS + 5)
    runs = chunks(items)
    assert [len(r) for r in runs] == [MAX_BATCH_ITEMS, 5]
    big = [(b"k%d" % n, bytes([65 + n]) * (MAX_RECORD_BYTES // 3)) for n in range(4)]
    assert chunks(big) == [big[:2], big[2:]]
    assert chunks([]) == []


# -- counted-only changes ------------------------------------------------------------------------------------


def test_a_pure_resend_only_counts():
    first, _, _ = dedup(None, alert(), 1, at(0), RULES)
    again, outputs, _ = dedup(first, alert(), 2, at(30), RULES)
    assert counted_only(first, again, outputs, RULES)


def test_a_change_a_rule_reads_is_not_counted_only():
    first, _, _ = dedup(None, alert(), 1, at(0), RULES)
    resolved, outputs, _ = dedup(first, alert("resolved", ends=40), 2, at(40), RULES)
    assert not counted_only(first, resolved, outputs, RULES)  # a state change
    again, outputs, _ = dedup(resolved, alert("resolved", ends=40), 3, at(50), RULES)
    assert not counted_only(resolved, again, outputs, RULES)  # resolve_seen moves (DUP-11 reads it)
    quiet = dataclasses.replace(
        RULES,
        policies=PolicySet(
            policies=(Policy(name="default", group_by=("alertname",), quiet_resolve=timedelta(minutes=5)),)
        ),
    )
    first, _, _ = dedup(None, alert(), 1, at(0), quiet)
    again, outputs, _ = dedup(first, alert(), 2, at(30), quiet)
    assert not counted_only(first, again, outputs, quiet)  # DUP-7 reads last_seen


def test_counted_only_entries_reach_the_table_with_the_next_real_change_or_after_a_while():
    table: dict[str, bytes] = {}
    entries = Entries(table, FingerprintState, "fingerprints")
    first, _, _ = dedup(None, alert(), 1, at(0), RULES)
    entries.set("fp", first)
    written = table["fp"]
    again, _, _ = dedup(first, alert(), 2, at(30), RULES)
    entries.touch("fp", again, partition=0)
    assert table["fp"] is written and entries.get("fp") is again and entries.unwritten() == 1
    assert entries.flush_due(0) == 0  # not old enough
    assert entries.flush_due(0, now=10**9) == 1 and FirebreakJSON(table["fp"]).duplicates == 1
    entries.touch("fp", again, partition=0)
    entries.forget({0})
    assert entries.unwritten() == 0 and FirebreakJSON(table["fp"]).duplicates == 1
    assert FLUSH_AFTER_SECONDS <= 60


def FirebreakJSON(raw: bytes) -> FingerprintState:
    return FingerprintState.model_validate_json(raw)


# -- the dedup stage over packed records ---------------------------------------------------------------------


class CountingTable(dict):
    """A table that counts writes (each would be a changelog record)."""

    writes = 0

    def __setitem__(self, key, value):
        self.writes += 1
        super().__setitem__(key, value)


@dataclass
class Sent:
    topic: str
    key: bytes
    value: bytes
    partition: int | None


class Producer:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append(Sent(topic, key, value, partition))


class Barrier:
    """What the stages ask of the barrier in these tests: decoding (a bad record would be dead-lettered)."""

    async def decode(self, stage_name, event, unpack):
        return unpack(event.value)


class Counts:
    async def of(self, topic: str) -> int:
        return 4


def stage() -> tuple[DedupStage, CountingTable, Producer]:
    table = CountingTable()
    producer = Producer()
    suppression = Suppression(silences=None, inhibition=None, rules=())  # type: ignore[arg-type] - no rules: no Redis
    dedup_stage = DedupStage(
        Entries(table, FingerprintState, "fingerprints"),
        RULES,
        suppression,
        barrier=Barrier(),  # type: ignore[arg-type]
        counts=Counts(),
        app=SimpleNamespace(producer=producer),
        decisions=True,
    )  # type: ignore[arg-type]
    return dedup_stage, table, producer


class Record:
    """A record as the stages read it (Faust's events can be weakly referenced: table writes name one)."""

    def __init__(self, value: bytes, message: SimpleNamespace) -> None:
        self.value = value
        self.message = message


def record(value: bytes, offset: int, seconds: float = 0, partition: int = 0) -> Record:
    return Record(
        value,
        SimpleNamespace(
            offset=offset,
            partition=partition,
            topic="alerts",
            key=None,
            timestamp=(T0 + timedelta(seconds=seconds)).timestamp(),
        ),
    )


def storm() -> list:
    """Three alerts, each sent four times in rounds, one resolving at the end."""
    labels = [{"alertname": "Down", "service": "api", "instance": f"i-{n}"} for n in range(3)]
    rounds = [alert(**labels[n]) for _ in range(4) for n in range(3)]
    return [*rounds, alert("resolved", ends=0, **labels[0])]


def events_of(producer: Producer, topic: str) -> list:
    found = []
    for sent in producer.sent:
        if sent.topic == topic:
            found += group_inputs(sent.value) if topic == "alert-events" else json.loads(sent.value)["decisions"]
    return found


def test_a_packed_record_folds_exactly_as_the_same_alerts_one_record_each():
    alerts = storm()
    packed, packed_table, packed_out = stage()
    asyncio.run(packed.handle([record(pack_alerts([a.model_dump_json(by_alias=True).encode() for a in alerts]), 5)]))
    single, single_table, single_out = stage()
    for index, a in enumerate(alerts):  # the same positions: item `index` of record 5
        asyncio.run(_one(single, a, index))
    assert events_of(packed_out, "alert-events") == events_of(single_out, "alert-events")
    assert [e.status.value for e in events_of(packed_out, "alert-events")] == ["firing"] * 3 + ["resolved"]
    packed.entries.flush_due(0, now=10**9)
    single.entries.flush_due(0, now=10**9)
    assert {k: FirebreakJSON(v) for k, v in packed_table.items()} == {
        k: FirebreakJSON(v) for k, v in single_table.items()
    }
    # one write per changed fingerprint for the whole record, however many copies it held
    assert packed_table.writes == 3


def _one(single: DedupStage, a, index: int):
    """The per-alert fold the stage must equal: the pure rule at the item's position, the entry written each time."""

    async def run():
        entry = single.entries.get(a.fingerprint)
        updated, outputs, _ = dedup(entry, a, position(5, index), T0, RULES)
        if updated is not entry:
            single.entries.set(a.fingerprint, updated)
        for out in outputs:
            await single.app.producer.send(
                "alert-events",
                out.correlation_key.encode(),
                pack_group_inputs([out.model_dump_json().encode()]),
                0,
                None,
                None,
            )

    return run()


def test_pure_resends_in_later_records_write_nothing_until_due():
    alerts = storm()[:3]
    dedup_stage, table, producer = stage()
    asyncio.run(
        dedup_stage.handle([record(pack_alerts([a.model_dump_json(by_alias=True).encode() for a in alerts]), 1)])
    )
    assert table.writes == 3
    for offset in range(2, 6):  # four rounds of pure re-sends
        asyncio.run(
            dedup_stage.handle(
                [
                    record(
                        pack_alerts([a.model_dump_json(by_alias=True).encode() for a in alerts]), offset, seconds=offset
                    )
                ]
            )
        )
    assert table.writes == 3 and dedup_stage.entries.unwritten() == 3
    assert all(dedup_stage.entries.get(a.fingerprint).duplicates == 4 for a in alerts)
    assert len(events_of(producer, "alert-events")) == 3  # the first round's firings, nothing since


def test_a_bad_item_goes_to_dead_letter_alone():
    alerts = storm()[:3]
    dedup_stage, _, producer = stage()
    failed = []

    class Failing(Barrier):
        async def item_failed(self, stage_name, event, index, value, exc):
            failed.append((stage_name, index))

    dedup_stage.barrier = Failing()  # type: ignore[assignment]
    real = dedup_stage.suppression.of

    def of(labels, fingerprint, now, sources):
        if labels["instance"] == "i-1":
            raise RuntimeError("boom")
        return real(labels, fingerprint, now, sources)

    dedup_stage.suppression.of = of  # type: ignore[method-assign]
    asyncio.run(
        dedup_stage.handle([record(pack_alerts([a.model_dump_json(by_alias=True).encode() for a in alerts]), 1)])
    )
    assert failed == [("dedup", 1)]
    assert len(events_of(producer, "alert-events")) == 2


def test_an_output_too_large_for_any_record_is_refused_not_sent_and_the_rest_go():
    from stream.outbox import Outbox

    producer = Producer()
    outbox = Outbox(SimpleNamespace(producer=producer), Counts())  # type: ignore[arg-type]
    outbox.add("alert-events", "k", b'{"type":"tick","at":"x"}')
    outbox.add("alert-events", "k", b"x" * (MAX_RECORD_BYTES + 1))
    outbox.add("alert-events", "k", b'{"type":"tick","at":"y"}')
    asyncio.run(outbox.flush())
    assert [(topic, key, len(value)) for topic, key, value in outbox.refused] == [
        ("alert-events", b"k", MAX_RECORD_BYTES + 1)
    ]
    assert [len(s.value) < MAX_RECORD_BYTES for s in producer.sent] == [True, True]


def test_a_dead_letter_kafka_refuses_goes_without_its_value_and_never_raises():
    from stream.barrier import Barrier

    sent = []

    class Topic:
        async def send(self, key, value, headers):
            if len(value) > 10:
                raise RuntimeError("MessageSizeTooLargeError")
            sent.append((value, headers))

    barrier = Barrier(app=None, dead_letter=Topic(), gaps=None, app_id="x")  # type: ignore[arg-type]
    asyncio.run(barrier.send_dead_letter(b"k", b"y" * 100, {"source": b"alerts/0/1"}))
    assert sent[0][0] == b"" and b"100 bytes" in sent[0][1]["value_omitted"]

    class Down:
        async def send(self, key, value, headers):
            raise RuntimeError("down")

    asyncio.run(Barrier(None, Down(), None, "x").send_dead_letter(b"k", b"v", {}))  # type: ignore[arg-type] - logged, no raise


def test_an_event_the_read_model_cannot_fold_goes_to_dead_letter_alone():
    from adapters.readmodel import ApplyResult
    from schemas import IncidentEvent
    from stream.project import ProjectStage

    events = [
        IncidentEvent.model_validate(
            {
                "event_id": f"e{n}",
                "incident_id": f"inc-{n}",
                "correlation_key": "k",
                "kind": "opened",
                "seq": 1,
                "at": at(n).isoformat(),
                "rule": "GRP-1",
                "group_labels": {"service": "a"},
            }
        )
        for n in range(3)
    ]

    class Store:
        async def fold_many(self, batch):
            if any(e.incident_id == "inc-1" for e in batch):
                raise ValueError("bad event")
            return [(ApplyResult.applied, None) for _ in batch]

    failed = []

    class Failing(Barrier):
        async def item_failed(self, stage_name, event, index, value, exc):
            failed.append((stage_name, index))

    stage_ = ProjectStage(Store(), None, Failing())  # type: ignore[arg-type]
    packed = (
        b'{"type":"incident_event_batch","version":1,"events":['
        + b",".join(e.model_dump_json().encode() for e in events)
        + b"]}"
    )
    asyncio.run(stage_.handle([record(packed, 3)]))
    assert failed == [("project", 1)]


def test_records_of_several_partitions_handled_together_write_each_key_to_its_own_partition():
    """Faust sends a table write's changelog record to the partition of the record it names: a batch of
    records from two partitions must name, for each key, a record of that key's partition."""
    from faust.streams import current_event

    class PartitionTable(dict):
        partitions: dict = {}

        def __setitem__(self, key, value):
            self.partitions[key] = current_event().message.partition
            super().__setitem__(key, value)

    table = PartitionTable()
    dedup_stage, _, _ = stage()
    dedup_stage.entries = Entries(table, FingerprintState, "fingerprints")
    first, second = storm()[0], storm()[1]
    asyncio.run(
        dedup_stage.handle(
            [
                record(pack_alerts([first.model_dump_json(by_alias=True).encode()]), 4, partition=0),
                record(pack_alerts([second.model_dump_json(by_alias=True).encode()]), 9, partition=3),
            ]
        )
    )
    assert table.partitions == {first.fingerprint: 0, second.fingerprint: 3}
