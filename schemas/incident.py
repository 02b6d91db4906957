"""Incidents and the events that build them.

`AlertEvent` travels on `alert-events` (the dedup stage's output, keyed by correlation key);
`IncidentEvent` travels on `incident-events` (the grouping stage's output, keyed by incident id) and is the
source of truth from which the `Incident` read model in Redis is rebuilt.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field

from schemas.alert import Alert, AlertStatus


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertEvent(_Record):
    """An alert that changed state (first firing, re-firing, or resolving), tagged with its correlation key."""

    status: AlertStatus
    correlation_key: str
    group_labels: dict[str, str]
    alert: Alert
    at: AwareDatetime


class IncidentEventKind(StrEnum):
    opened = "opened"
    alert_added = "alert_added"
    alert_resolved = "alert_resolved"
    resolved = "resolved"


class IncidentStatus(StrEnum):
    open = "open"
    resolved = "resolved"


class IncidentEvent(_Record):
    """One step in an incident's life. `seq` orders an incident's events; `event_id` is stable on redelivery."""

    event_id: str
    kind: IncidentEventKind
    incident_id: str
    correlation_key: str
    group_labels: dict[str, str]
    seq: int = Field(ge=1)
    at: AwareDatetime
    alert: Alert | None = None


class IncidentAlert(_Record):
    """An alert as the incident sees it."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None


class TimelineEntry(_Record):
    seq: int
    at: AwareDatetime
    kind: IncidentEventKind
    fingerprint: str | None = None


class Incident(_Record):
    """The read model of one incident, as the API and CLI show it."""

    # The computed counts are written out with the model; reading them back ignores them.
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    correlation_key: str
    group_labels: dict[str, str]
    status: IncidentStatus
    title: str
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    seq: int = Field(ge=1, description="the seq of the last incident event applied")
    alerts: dict[str, IncidentAlert] = Field(default_factory=dict)
    timeline: list[TimelineEntry] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def firing_count(self) -> int:
        return sum(1 for a in self.alerts.values() if a.status is AlertStatus.firing)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def alert_count(self) -> int:
        return len(self.alerts)
