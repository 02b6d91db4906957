"""Group commit's packing (ingest/packing.py): the alerts of one linger window become AlertBatch records, one
per partition of `alerts`, each alert in the partition its fingerprint hashes to, in accept order, split where
a record would grow past its size or item limit."""

from __future__ import annotations

from ingest.packing import MAX_RECORD_BYTES, Item, alert_json, pack
from schemas.alert import Alert
from schemas.batch import AlertBatch, alert_records, partition_of
from tests.factories import alert

PARTITIONS = 4


def alerts(n: int, **extra: str) -> list[Alert]:
    return [alert(alertname="Packed", instance=f"i{i}", **extra) for i in range(n)]


def items(found: list[Alert], owner: str) -> list[Item[str]]:
    return [Item(a.fingerprint, alert_json(a), owner) for a in found]


def test_a_record_is_exactly_an_alert_batch_with_its_type_first():
    found = alerts(3)
    [record] = pack(items(found, "r1"), partitions=1)
    assert record.value == AlertBatch(alerts=found).model_dump_json(by_alias=True).encode()
    assert AlertBatch.is_one(record.value)
    assert alert_records(record.value) == found


def test_alerts_of_several_requests_share_one_record_per_partition_in_accept_order():
    first, second, third = alerts(30), alerts(30, service="billing"), alerts(30, service="search")
    records = pack(items(first, "a") + items(second, "b") + items(third, "c"), PARTITIONS)

    assert sorted(r.partition for r in records) == list(range(PARTITIONS))  # one record per partition, no more
    accepted = first + second + third
    for record in records:
        inside = alert_records(record.value)
        assert all(partition_of(a.fingerprint.encode(), PARTITIONS) == record.partition for a in inside)
        assert inside == [a for a in accepted if partition_of(a.fingerprint.encode(), PARTITIONS) == record.partition]
        assert record.count == len(inside)
        assert set(record.owners) == {"a", "b", "c"}
    assert sum(r.count for r in records) == 90


def test_one_fingerprint_sent_twice_stays_in_one_partition_in_order():
    firing = alert(alertname="Twice", service="s")
    resolved = alert("resolved", ends=5, alertname="Twice", service="s")
    records = pack(items([firing], "a") + items(alerts(8), "b") + items([resolved], "c"), PARTITIONS)
    holding = [r for r in records if firing.fingerprint.encode() in r.value]
    assert len(holding) == 1
    assert [a for a in alert_records(holding[0].value) if a.fingerprint == firing.fingerprint] == [firing, resolved]


def test_a_partition_beyond_the_size_limit_is_split_in_order_and_no_record_passes_it():
    big = [alert(alertname="Big", instance=f"i{i}", **{"detail": "x" * 3000}) for i in range(40)]
    limit = 20_000
    records = pack(items(big, "a"), partitions=1, max_bytes=limit)
    assert len(records) > 1
    assert all(len(r.value) <= limit for r in records)
    assert [a for r in records for a in alert_records(r.value)] == big  # every alert once, in order
    assert records[0].count * len(alert_json(big[0])) > limit // 2  # records are filled, not one alert each


def test_an_alert_larger_than_the_limit_travels_alone():
    small, huge = alerts(2), alert(alertname="Huge", detail="y" * 4000)
    records = pack(items([small[0], huge, small[1]], "a"), partitions=1, max_bytes=2_000)
    assert [alert_records(r.value) for r in records] == [[small[0]], [huge], [small[1]]]


def test_a_partition_beyond_the_item_limit_is_split():
    records = pack(items(alerts(25), "a"), partitions=1, max_items=10)
    assert [r.count for r in records] == [10, 10, 5]


def test_owners_are_named_once_each_in_order_of_first_alert():
    found = alerts(6)
    [record] = pack(items(found[:2], "b") + items(found[2:4], "a") + items(found[4:], "b"), partitions=1)
    assert record.owners == ("b", "a")


def test_the_default_limit_keeps_records_under_the_brokers_default_message_size():
    assert MAX_RECORD_BYTES < 1_048_588  # Kafka's default message.max.bytes
