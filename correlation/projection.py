"""The incident read model, folded from incident events. Pure: the Redis writer only loads and saves."""

from __future__ import annotations

from schemas import (
    AlertStatus,
    Incident,
    IncidentAlert,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    TimelineEntry,
)

TIMELINE_LIMIT = 500


def title_for(event: IncidentEvent) -> str:
    """`HighLatency on checkout` from the group labels, falling back to the opening alert's alertname."""
    labels = {k: v for k, v in event.group_labels.items() if v}
    name = labels.pop("alertname", None) or (event.alert.labels.get("alertname") if event.alert else None)
    rest = ", ".join(labels.values())
    if name and rest:
        return f"{name} on {rest}"
    return name or rest or event.correlation_key


def project(incident: Incident | None, event: IncidentEvent) -> Incident | None:
    """The incident after `event`, or None when the event is already applied (seq not newer) or out of turn."""
    if incident is None:
        if event.kind is not IncidentEventKind.opened:
            return None
        incident = Incident(
            id=event.incident_id,
            correlation_key=event.correlation_key,
            group_labels=event.group_labels,
            status=IncidentStatus.open,
            title=title_for(event),
            opened_at=event.at,
            updated_at=event.at,
            seq=event.seq,
            timeline=[_timeline_entry(event)],
        )
        return incident
    if event.seq <= incident.seq:
        return None

    changes: dict[str, object] = {"seq": event.seq, "updated_at": event.at}
    alert = event.alert
    if alert is not None and event.kind in (IncidentEventKind.alert_added, IncidentEventKind.alert_resolved):
        status = AlertStatus.firing if event.kind is IncidentEventKind.alert_added else AlertStatus.resolved
        changes["alerts"] = {
            **incident.alerts,
            alert.fingerprint: IncidentAlert(
                fingerprint=alert.fingerprint,
                status=status,
                labels=alert.labels,
                annotations=alert.annotations,
                starts_at=alert.starts_at,
                ends_at=alert.ends_at if status is AlertStatus.resolved else None,
            ),
        }
    if event.kind is IncidentEventKind.resolved:
        changes["status"] = IncidentStatus.resolved
        changes["resolved_at"] = event.at
    changes["timeline"] = [*incident.timeline, _timeline_entry(event)][-TIMELINE_LIMIT:]
    return incident.model_copy(update=changes)


def _timeline_entry(event: IncidentEvent) -> TimelineEntry:
    fingerprint = event.alert.fingerprint if event.alert else None
    return TimelineEntry(seq=event.seq, at=event.at, kind=event.kind, fingerprint=fingerprint)
