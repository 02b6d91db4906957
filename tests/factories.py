"""Small builders for test data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from correlation.fingerprint import fingerprint
from schemas import Alert, AlertStatus

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def alert(
    status: str = "firing",
    starts: float = 0,
    ends: float | None = None,
    received: float | None = None,
    **labels: str,
) -> Alert:
    labels = labels or {"alertname": "HighLatency", "service": "checkout", "instance": "a"}
    return Alert(
        fingerprint=fingerprint(labels),
        status=AlertStatus(status),
        labels=labels,
        starts_at=at(starts),
        ends_at=at(ends) if ends is not None else None,
        source="test",
        received_at=at(received if received is not None else max(starts, ends if ends is not None else starts)),
    )


# The `incident` of a channel Message as the pager builds it (actions/matching.py `context`), for sending tests.
INCIDENT_CONTEXT = {
    "id": "inc-1",
    "title": "Down",
    "status": "triggered",
    "severity": "critical",
    "services": ["web"],
    "probable_root": "web",
    "suspect_changes": [],
    "firing_count": 1,
    "alert_count": 1,
    "labels": {},
}
