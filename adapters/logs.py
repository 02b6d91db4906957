"""Structured logs: one JSON object per line, newlines and control characters escaped by json.dumps.

A line that concerns one incident (or run, or delivery) carries it as a field: log with
`extra=context(incident_id=..., correlation_key=...)` and the formatter writes those keys.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT_KEYS = ("incident_id", "correlation_key", "run_id", "runbook", "step_id", "channel", "delivery_id")


def context(**fields: object) -> dict[str, object]:
    """The `extra` of a log call about one incident, run or delivery (keys from CONTEXT_KEYS)."""
    unknown = set(fields) - set(CONTEXT_KEYS)
    assert not unknown, f"unknown log context {unknown}"
    return {k: v for k, v in fields.items() if v is not None}


def dict_config(level: str) -> dict[str, object]:
    """The same setup as `configure`, as a logging dictConfig (the Faust worker takes its logging this way)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {name: {"level": "WARNING"} for name in ("kafka", "aiokafka")},
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str) -> None:
    """JSON logs to stderr at `level`; the Kafka client libraries only from warnings up."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
