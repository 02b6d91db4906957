"""Every Prometheus metric Firebreak exports, defined once. Labels are bounded: never one per alert or incident.

Each process exports only its own metrics, from its own registry: `firebreak ingest` serves `INGEST` on
`/metrics`, `firebreak worker` serves `WORKER` on `worker_metrics_port`. With one shared registry, the worker
exported `firebreak_ingest_kafka_up 0` (a gauge it never sets), so `min(firebreak_ingest_kafka_up) == 0`
fired for ever once both jobs were scraped. Both registries carry the process, platform and GC collectors
and `firebreak_build_info`. The `_created` series of counters and histograms are off: no rule or dashboard
reads them, and they doubled the series count.
"""

from __future__ import annotations

from functools import partial

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

from schemas import __version__

disable_created_metrics()


def _registry() -> tuple[CollectorRegistry, Info]:
    """A registry for one process role: the default registry's process, platform and GC collectors, and the
    build info."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    build = Info("firebreak_build", "Firebreak version.", registry=registry)
    build.info({"version": __version__})
    return registry, build


INGEST, INGEST_BUILD_INFO = _registry()
WORKER, WORKER_BUILD_INFO = _registry()
IngestCounter, IngestGauge, IngestHistogram = (partial(kind, registry=INGEST) for kind in (Counter, Gauge, Histogram))
WorkerCounter, WorkerGauge, WorkerHistogram = (partial(kind, registry=WORKER) for kind in (Counter, Gauge, Histogram))

INGEST_REQUESTS = IngestCounter(
    "firebreak_ingest_requests_total", "HTTP requests answered by ingest/API.", ["route", "code"]
)
INGEST_LATENCY = IngestHistogram(
    "firebreak_ingest_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ALERTS_RECEIVED = IngestCounter("firebreak_alerts_received_total", "Alerts accepted (durable in Kafka).", ["source"])
ALERTS_REJECTED = IngestCounter(
    "firebreak_alerts_rejected_total", "Requests refused before Kafka, by reason.", ["source", "reason"]
)
ALERTS_TRUNCATED = IngestCounter(
    "firebreak_alerts_truncated_total",
    "Alerts an Alertmanager webhook said it left out (truncatedAlerts; raise max_alerts on that receiver).",
    ["receiver"],
)
UNKNOWN_FIELDS = IngestCounter(
    "firebreak_ingest_unknown_fields_total",
    "Alert fields of a webhook this release does not know, ignored.",
    ["source"],
)
PRODUCE_LATENCY = IngestHistogram(
    "firebreak_kafka_produce_duration_seconds",
    "Time for Kafka to acknowledge one request's records (acks=all), the group commit's linger included.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ALERTS_PER_RECORD = IngestHistogram(
    "firebreak_ingest_alerts_per_record",
    "Alerts packed into one acknowledged `alerts` record (group commit).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000),
)
KAFKA_UP = IngestGauge("firebreak_ingest_kafka_up", "1 while the ingest producer is connected to Kafka.")

ALERTS_PROCESSED = WorkerCounter(
    "firebreak_alerts_processed_total", "Alert records through the dedup stage, by outcome.", ["outcome"]
)
INCIDENT_EVENTS = WorkerCounter("firebreak_incident_events_total", "Incident events emitted, by kind.", ["kind"])
DEAD_LETTERS = WorkerCounter(
    "firebreak_dead_letter_total", "Records sent to the dead-letter topic.", ["stage", "reason"]
)
SKIPPED_RECORDS = WorkerCounter(
    "firebreak_stream_skipped_records_total",
    "Records the stream skipped, fetched and processed by the gap repair.",
    ["stage"],
)
MISROUTED_RECORDS = WorkerCounter(
    "firebreak_stream_misrouted_records_total",
    "Records of another topic the stream handed to a stage; left to their own stage.",
    ["stage"],
)
STATE_RESETS = WorkerCounter(
    "firebreak_state_entries_reset_total", "Table entries that could not be read and were started afresh.", ["table"]
)
READ_MODEL_WRITES = WorkerCounter(
    "firebreak_read_model_writes_total", "Incident events applied to the Redis read model, by result.", ["result"]
)

REDIS_WAITS = WorkerCounter(
    "firebreak_redis_waits_total",
    "Times a stream stage paused because Redis did not answer (it retries; nothing is skipped).",
)
READ_MODEL_REBUILDS = WorkerCounter(
    "firebreak_read_model_rebuilds_total",
    "Automatic rebuilds of the read model after it vanished (Redis flushed or replaced).",
)

RUNS_CREATED = WorkerCounter(
    "firebreak_runbook_runs_created_total", "Runbook runs created by incident events.", ["runbook"]
)
RUNS_FINISHED = WorkerCounter(
    "firebreak_runbook_runs_finished_total", "Runbook runs finished, by final status.", ["runbook", "status"]
)
STEPS_FINISHED = WorkerCounter(
    "firebreak_runbook_steps_total", "Runbook steps finished, by action and status.", ["action", "status"]
)
ACTIONS_REFUSED = WorkerCounter(
    "firebreak_actions_refused_total",
    "Steps refused by an allow-list (host, address or program), by action.",
    ["action"],
)
GUARDRAIL_BLOCKS = WorkerCounter(
    "firebreak_guardrail_blocks_total",
    "Runbook runs a guardrail kept from starting, by runbook and guardrail.",
    ["runbook", "guardrail"],
)
PARTITION_WAITS = WorkerCounter(
    "firebreak_table_write_retries_total",
    "Table writes Faust refused for a changelog/source partition mismatch and the stage retried, by stage.",
    ["stage"],
)
EXECUTOR_ERRORS = WorkerCounter(
    "firebreak_executor_errors_total", "Executor failures outside a step, by cause.", ["cause"]
)

NOTIFICATIONS = WorkerCounter(
    "firebreak_notifications_total",
    "Notifications by channel type, kind and outcome.",
    ["channel_type", "kind", "status"],
)
NOTIFICATION_LATENCY = WorkerHistogram(
    "firebreak_first_page_seconds",
    "From the incident event to the first level's page being accepted by the receiver.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
ESCALATIONS = WorkerCounter("firebreak_escalations_total", "Escalation steps, by outcome.", ["outcome"])

ALERTS_SUPPRESSED = WorkerCounter(
    "firebreak_alerts_suppressed_total",
    "Alerts recorded but kept out of incidents, by reason (silence or inhibit).",
    ["reason"],
)
OPEN_INCIDENTS = WorkerGauge(
    "firebreak_open_incidents",
    "Open incidents (triggered or acknowledged) by severity, from the read model. "
    "Every worker reports the same figure: aggregate with max.",
    ["severity"],
)
_LONG = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
ALERT_TO_INCIDENT = WorkerHistogram(
    "firebreak_alert_to_incident_seconds",
    "From the startsAt of the alert that opened an incident to the incident opening.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
TIME_TO_ACKNOWLEDGE = WorkerHistogram(
    "firebreak_incident_time_to_acknowledge_seconds",
    "From an incident opening to its acknowledgement (MTTA).",
    buckets=_LONG,
)
TIME_TO_RESOLVE = WorkerHistogram(
    "firebreak_incident_time_to_resolve_seconds", "From an incident opening to its resolution (MTTR).", buckets=_LONG
)
STEP_DURATION = WorkerHistogram(
    "firebreak_runbook_step_duration_seconds",
    "Time a runbook step took (all attempts), by action.",
    ["action"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
UNWRITTEN_COUNTS = WorkerGauge(
    "firebreak_dedup_unwritten_counts",
    "Fingerprints whose last changes only counted re-sends and are not in the changelog yet (written within 10 s; "
    "a crash loses only these counters).",
)
CONSUMER_LAG = WorkerGauge(
    "firebreak_consumer_lag",
    "Records between the last one this worker handled and the end of a partition it consumes.",
    ["topic", "partition"],
)
