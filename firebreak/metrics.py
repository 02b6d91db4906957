"""Every Prometheus metric Firebreak exports, defined once. Labels are bounded: never one per alert or incident."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from firebreak import __version__

BUILD_INFO = Info("firebreak_build", "Firebreak version.")
BUILD_INFO.info({"version": __version__})

INGEST_REQUESTS = Counter(
    "firebreak_ingest_requests_total", "HTTP requests answered by ingest/API.", ["route", "code"]
)
INGEST_LATENCY = Histogram(
    "firebreak_ingest_request_duration_seconds", "Time to answer an HTTP request.", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ALERTS_RECEIVED = Counter("firebreak_alerts_received_total", "Alerts accepted (durable in Kafka).", ["source"])
ALERTS_REJECTED = Counter("firebreak_alerts_rejected_total", "Requests refused before Kafka, by reason.", ["source", "reason"])
ALERTS_TRUNCATED = Counter(
    "firebreak_alerts_truncated_total",
    "Alerts an Alertmanager webhook said it left out (truncatedAlerts; raise max_alerts on that receiver).", ["receiver"]
)
UNKNOWN_FIELDS = Counter(
    "firebreak_ingest_unknown_fields_total", "Alert fields of a webhook this release does not know, ignored.", ["source"]
)
PRODUCE_LATENCY = Histogram(
    "firebreak_kafka_produce_duration_seconds", "Time for Kafka to acknowledge one request's records (acks=all).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
KAFKA_UP = Gauge("firebreak_ingest_kafka_up", "1 while the ingest producer is connected to Kafka.")

ALERTS_PROCESSED = Counter(
    "firebreak_alerts_processed_total", "Alert records through the dedup stage, by outcome.", ["outcome"]
)
INCIDENT_EVENTS = Counter("firebreak_incident_events_total", "Incident events emitted, by kind.", ["kind"])
DEAD_LETTERS = Counter("firebreak_dead_letter_total", "Records sent to the dead-letter topic.", ["stage", "reason"])
SKIPPED_RECORDS = Counter(
    "firebreak_stream_skipped_records_total", "Records the stream skipped, fetched and processed by the gap repair.", ["stage"]
)
MISROUTED_RECORDS = Counter(
    "firebreak_stream_misrouted_records_total", "Records of another topic the stream handed to a stage; left to their own stage.", ["stage"]
)
STATE_RESETS = Counter(
    "firebreak_state_entries_reset_total", "Table entries that could not be read and were started afresh.", ["table"]
)
READ_MODEL_WRITES = Counter(
    "firebreak_read_model_writes_total", "Incident events applied to the Redis read model, by result.", ["result"]
)

REDIS_WAITS = Counter(
    "firebreak_redis_waits_total", "Times a stream stage paused because Redis did not answer (it retries; nothing is skipped)."
)
READ_MODEL_REBUILDS = Counter(
    "firebreak_read_model_rebuilds_total", "Automatic rebuilds of the read model after it vanished (Redis flushed or replaced)."
)

RUNS_CREATED = Counter("firebreak_runbook_runs_created_total", "Runbook runs created by incident events.", ["runbook"])
RUNS_FINISHED = Counter("firebreak_runbook_runs_finished_total", "Runbook runs finished, by final status.", ["runbook", "status"])
STEPS_FINISHED = Counter("firebreak_runbook_steps_total", "Runbook steps finished, by action and status.", ["action", "status"])
ACTIONS_REFUSED = Counter(
    "firebreak_actions_refused_total", "Steps refused by an allow-list (host, address or program), by action.", ["action"]
)
GUARDRAIL_BLOCKS = Counter("firebreak_guardrail_blocks_total", "Runbook runs a guardrail kept from starting, by runbook and guardrail.",
                           ["runbook", "guardrail"])
PARTITION_WAITS = Counter("firebreak_table_write_retries_total",
                          "Table writes Faust refused for a changelog/source partition mismatch and the stage retried, by stage.",
                          ["stage"])
EXECUTOR_ERRORS = Counter("firebreak_executor_errors_total", "Executor failures outside a step, by cause.", ["cause"])

NOTIFICATIONS = Counter(
    "firebreak_notifications_total", "Notifications by channel type, kind and outcome.", ["channel_type", "kind", "status"]
)
NOTIFICATION_LATENCY = Histogram(
    "firebreak_first_page_seconds", "From the incident event to the first level's page being accepted by the receiver.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
ESCALATIONS = Counter("firebreak_escalations_total", "Escalation steps, by outcome.", ["outcome"])

ALERTS_SUPPRESSED = Counter(
    "firebreak_alerts_suppressed_total", "Alerts recorded but kept out of incidents, by reason (silence or inhibit).", ["reason"]
)
OPEN_INCIDENTS = Gauge(
    "firebreak_open_incidents", "Open incidents (triggered or acknowledged) by severity, from the read model. "
    "Every worker reports the same figure: aggregate with max.", ["severity"]
)
_LONG = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
ALERT_TO_INCIDENT = Histogram(
    "firebreak_alert_to_incident_seconds", "From the startsAt of the alert that opened an incident to the incident opening.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
TIME_TO_ACKNOWLEDGE = Histogram(
    "firebreak_incident_time_to_acknowledge_seconds", "From an incident opening to its acknowledgement (MTTA).", buckets=_LONG
)
TIME_TO_RESOLVE = Histogram(
    "firebreak_incident_time_to_resolve_seconds", "From an incident opening to its resolution (MTTR).", buckets=_LONG
)
STEP_DURATION = Histogram(
    "firebreak_runbook_step_duration_seconds", "Time a runbook step took (all attempts), by action.", ["action"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
CONSUMER_LAG = Gauge(
    "firebreak_consumer_lag", "Records between the last one this worker handled and the end of a partition it consumes.",
    ["topic", "partition"],
)


def docs_table() -> str:
    """The Markdown table of every metric above, for the README (a test keeps it current)."""
    import sys

    from prometheus_client.metrics import MetricWrapperBase

    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    found = [m for m in vars(sys.modules[__name__]).values() if isinstance(m, MetricWrapperBase)]
    for metric in sorted(found, key=lambda m: m._name):
        kind = metric._type
        name = metric._name + ("_total" if kind == "counter" else "_info" if kind == "info" else "")
        labels = ", ".join(f"`{label}`" for label in metric._labelnames) or "-"
        rows.append(f"| `{name}` | {kind} | {labels} | {metric._documentation} |")
    return "\n".join(rows)
