"""Each process exports only its own metrics: ingest's /metrics never carries the worker's series and the
worker's never carries `firebreak_ingest_kafka_up` (whose 0 kept FirebreakKafkaUnavailable firing); no
`_created` series. Expositions are generated in-process (no services)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from prometheus_client import generate_latest

from adapters.metrics import ALERTS_PROCESSED, ALERTS_RECEIVED, INGEST, KAFKA_UP, WORKER
from ingest.server import _metrics


def families(exposition: bytes) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+)", exposition.decode(), re.MULTILINE))


def test_ingest_serves_only_its_own_metrics():
    KAFKA_UP.set(1)
    ALERTS_RECEIVED.labels(source="generic").inc()
    served: Any = asyncio.run(_metrics(None))  # type: ignore[arg-type]  (the handler reads nothing of the request)
    found = families(served.body)
    assert {"firebreak_ingest_kafka_up", "firebreak_alerts_received_total", "firebreak_build_info"} <= found
    assert not found & {"firebreak_alerts_processed_total", "firebreak_consumer_lag", "firebreak_open_incidents"}


def test_the_worker_does_not_export_ingest_kafka_up():
    ALERTS_PROCESSED.labels(outcome="new").inc()
    found = families(generate_latest(WORKER))
    assert {"firebreak_alerts_processed_total", "firebreak_build_info", "process_cpu_seconds_total"} <= found
    assert not any(name.startswith("firebreak_ingest") for name in found), found
    assert "firebreak_alerts_received_total" not in found


def test_no_created_series_are_exported():
    ALERTS_RECEIVED.labels(source="generic").inc()
    ALERTS_PROCESSED.labels(outcome="new").inc()
    for registry in (INGEST, WORKER):
        created = re.findall(r"^\S+_created(?:\{.*\})? ", generate_latest(registry).decode(), re.MULTILINE)
        assert created == [], created
