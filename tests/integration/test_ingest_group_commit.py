"""Group commit against the real Kafka: the alerts of concurrent requests to ingest land packed, per partition of
`alerts`, in AlertBatch records, each alert in the partition its fingerprint hashes to, every accepted alert
once."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from kafka import KafkaConsumer, TopicPartition

from ingest.packing import MAX_RECORD_BYTES
from schemas.batch import AlertBatch, alert_records, partition_of
from tests.conftest import Ingest, Stack, start_ingest, wait_until

pytestmark = pytest.mark.integration

REQUESTS = 16
ALERTS_PER_REQUEST = 12


def records_since(stack: Stack, starts: dict[int, int]) -> list[tuple[int, bytes | None]]:
    """(partition, value) of every `alerts` record written after `starts` (partition -> offset)."""
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition("alerts", p) for p in starts]
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, starts[tp.partition])
        ends = consumer.end_offsets(partitions)
        found: list[tuple[int, bytes | None]] = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                found += [(tp.partition, r.value) for r in batch if r.offset < ends[tp]]
        return found
    finally:
        consumer.close()


def end_offsets(stack: Stack) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap)
    try:
        partitions = [TopicPartition("alerts", p) for p in consumer.partitions_for_topic("alerts") or set()]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def packing_ingest(stack: Stack) -> Iterator[Ingest]:
    # A linger long enough that requests posted together on a busy 2-core machine wait for the flush before
    # theirs to be acknowledged, and bodies large enough to need several records for one partition.
    ingest = start_ingest(
        stack,
        stack.folder / "ingest-group-commit.log",
        FIREBREAK_INGEST_BATCH_LINGER_MS="300",
        FIREBREAK_MAX_REQUEST_BYTES=str(16 * 1024 * 1024),
    )
    try:
        wait_until(lambda: ingest.get("/readyz").status_code == 200, 30, "ingest to reach Kafka (/readyz)")
        yield ingest
    finally:
        ingest.process.stop()


def test_concurrent_requests_are_packed_per_partition_into_alert_batches(stack: Stack, packing_ingest: Ingest):
    run = uuid.uuid4().hex[:8]
    starts = end_offsets(stack)
    partitions = len(starts)
    together = threading.Barrier(REQUESTS)

    def post(n: int) -> list[str]:
        body = json.dumps(
            [
                {"labels": {"alertname": "GroupCommit", "run": run, "request": str(n), "i": str(i)}}
                for i in range(ALERTS_PER_REQUEST)
            ]
        )
        together.wait(timeout=30)
        response = packing_ingest.post("/api/v1/alerts", body)
        assert response.status_code == 202, response.text
        return response.json()["fingerprints"]

    with ThreadPoolExecutor(REQUESTS) as pool:
        accepted = [fp for fingerprints in pool.map(post, range(REQUESTS)) for fp in fingerprints]

    mine = [(partition, value) for partition, value in records_since(stack, starts) if value and run.encode() in value]
    assert mine and all(AlertBatch.is_one(value) for _, value in mine), "alerts went to Kafka as single-alert records"
    placed = [(partition, alert) for partition, value in mine for alert in alert_records(value)]
    assert all(partition_of(alert.fingerprint.encode(), partitions) == partition for partition, alert in placed)
    assert Counter(alert.fingerprint for _, alert in placed) == Counter(accepted)  # every accepted alert, once
    assert len(accepted) == REQUESTS * ALERTS_PER_REQUEST
    requests_per_record = [len({alert.labels["request"] for alert in alert_records(value)}) for _, value in mine]
    assert max(requests_per_record) > 1, "no record holds the alerts of more than one request"
    # Unshared, each request would need a record in about every partition.
    assert len(mine) <= REQUESTS * partitions // 2, f"{len(mine)} records for {REQUESTS} requests: little was shared"
    assert "firebreak_ingest_alerts_per_record_count" in packing_ingest.get("/metrics").text


def test_a_request_larger_than_a_record_is_split_in_order_and_kafka_takes_every_part(
    stack: Stack, packing_ingest: Ingest
):
    # ~8 MB of alerts: about 2 MB per partition, more than one record may hold (and than a broker takes by
    # default in one record, 1 MiB): each partition's alerts go as several records, in accept order.
    run = uuid.uuid4().hex[:8]
    starts = end_offsets(stack)
    body = json.dumps(
        [
            {
                "labels": {"alertname": "GroupCommitLarge", "run": run, "i": str(i)},
                "annotations": {"description": "d" * 5000},
            }
            for i in range(1600)
        ]
    )
    response = packing_ingest.post("/api/v1/alerts", body)
    assert response.status_code == 202, response.text
    accepted = response.json()["fingerprints"]

    mine = [(partition, value) for partition, value in records_since(stack, starts) if value and run.encode() in value]
    assert all(AlertBatch.is_one(value) and len(value) <= MAX_RECORD_BYTES for _, value in mine)
    per_partition = Counter(partition for partition, _ in mine)
    assert all(count >= 2 for count in per_partition.values()), per_partition
    in_order = [alert.fingerprint for _, value in mine for alert in alert_records(value)]
    assert sorted(in_order) == sorted(accepted)
    for partition in per_partition:  # records_since reads each partition in offset order
        theirs = [a.fingerprint for p, value in mine if p == partition for a in alert_records(value)]
        here = set(theirs)
        assert theirs == [fp for fp in accepted if fp in here]
