"""Poison records written straight onto Firebreak's topics (not JSON, the wrong schema, a tombstone) go to
`dead-letter` with the stage that owns the topic and the reason, and the partition keeps flowing: a good alert behind them on the
same partition still becomes an incident."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.conftest import Ingest, Stack, start_ready_worker, wait_until

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
POISON = [b"\xff\xfe not json", b'{"fingerprint": 42}', b"[]", None]


def dead_letters(stack: Stack) -> list[tuple[dict[str, bytes], bytes | None, bytes | None]]:
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        partitions = [TopicPartition("dead-letter", p) for p in consumer.partitions_for_topic("dead-letter") or set()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found = []
        for record in consumer:
            found.append((dict(record.headers), record.key, record.value))
        return found
    finally:
        consumer.close()


def test_poison_goes_to_dead_letter_and_the_partition_keeps_flowing(stack: Stack, ingest: Ingest):
    worker, _ = start_ready_worker(stack, "worker-poison")
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    try:
        for topic in ("alerts", "alert-events", "incident-events", "action-results", "notifications", "changes"):
            for n, value in enumerate(POISON):
                producer.send(topic, key=f"poison-{RUN}-{topic}-{n}".encode(), value=value, partition=0)
        producer.flush()
        # A good alert on partition 0 of `alerts`, behind the poison.
        good = {
            "fingerprint": f"good-{RUN}",
            "status": "firing",
            "labels": {"alertname": "AfterPoison", "service": f"poison-{RUN}"},
            "annotations": {},
            "startsAt": datetime.now(UTC).isoformat(),
            "source": "test",
            "receivedAt": datetime.now(UTC).isoformat(),
        }
        producer.send("alerts", key=f"good-{RUN}".encode(), value=json.dumps(good).encode(), partition=0)
        producer.flush()

        def opened() -> bool:
            found = ingest.get("/api/v1/incidents?limit=1000").json()["incidents"]
            return any(i["group_labels"].get("service") == f"poison-{RUN}" for i in found)

        wait_until(opened, 60, "the good alert behind the poison to open its incident")
        expected = {
            f"poison-{RUN}-{t}-{n}".encode()
            for t in ("alerts", "alert-events", "incident-events", "action-results", "notifications", "changes")
            for n in range(len(POISON))
        }
        wait_until(
            lambda: expected <= {key for _, key, _ in dead_letters(stack)}, 60, "every poison record in dead-letter"
        )
        mine = [(h, k, v) for h, k, v in dead_letters(stack) if k in expected]
        # Each poison record is judged by the stage that owns its topic (at least once: a redelivery after a
        # rebalance may dead-letter it again, never lose it).
        owner = {
            b"alerts": b"dedup",
            b"alert-events": b"group",
            b"incident-events": b"project",
            b"action-results": b"results",
            b"notifications": b"deliveries",
            b"changes": b"changes",
        }
        for headers, key, _ in mine:
            topic = headers["source"].split(b"/")[0]
            assert headers["stage"] == owner[topic], headers
            assert headers["reason"] in (b"undecodable", b"processing_failed") and headers["error"], headers
            assert key.decode().startswith(f"poison-{RUN}-{topic.decode()}-")
        assert worker.popen.poll() is None, worker.tail()
    finally:
        producer.close()
        worker.stop()
