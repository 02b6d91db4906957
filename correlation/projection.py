"""The incident read model, folded from incident events. Pure: the Redis writer only loads and saves.

A person's merge (GRP-30) resolves the source with `merged_into` and empties its alerts: they are the target's
now, which lists them from the `alert_added` / `alert_resolved` events that follow its `merged_in` (each carries
the alert). A split (GRP-31) takes the moved alerts off the source (`alerts_split`) and the new incident lists
them the same way; each side names the other (`merged_from`, `split_into`, `split_from`).
"""

from __future__ import annotations

from datetime import datetime

from schemas import (
    Alert,
    AlertStatus,
    Incident,
    IncidentAlert,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    TimelineEntry,
)

TIMELINE_LIMIT = 500
# Events that change only what an alert shows (GRP-27): applied to the alert, kept off the timeline, which
# is for what happened to the incident (an annotation quoting a value changes at every re-send).
_OFF_TIMELINE = frozenset({IncidentEventKind.alert_updated})
_ALERT_STATUS = {
    IncidentEventKind.alert_added: AlertStatus.firing,
    IncidentEventKind.alert_updated: AlertStatus.firing,
    IncidentEventKind.alert_resolved: AlertStatus.resolved,
}

_STATUS_AFTER = {
    IncidentEventKind.opened: IncidentStatus.triggered,
    IncidentEventKind.acknowledged: IncidentStatus.acknowledged,
    IncidentEventKind.resolved: IncidentStatus.resolved,
    IncidentEventKind.reopened: IncidentStatus.triggered,
    IncidentEventKind.merged: IncidentStatus.resolved,
}
_BY_FINGERPRINT = (IncidentEventKind.alert_added, IncidentEventKind.alert_resolved)


def project(incident: Incident | None, event: IncidentEvent) -> Incident | None:
    """The incident after `event`, or None when the event is already applied (seq not newer) or out of turn."""
    if incident is None:
        if event.kind is not IncidentEventKind.opened:
            return None
        return Incident(
            id=event.incident_id,
            correlation_key=event.correlation_key,
            policy=event.policy,
            group_labels=event.group_labels,
            status=IncidentStatus.triggered,
            title=event.title or event.correlation_key,
            severity=event.severity,
            probable_root=event.probable_root,
            flapping=not event.notify,
            page_held_until=event.page_held_until,
            page_hold_reason=event.page_hold_reason,
            opened_at=event.at,
            updated_at=event.at,
            split_from=event.related[0] if event.rule == "GRP-31" and event.related else None,
            seq=event.seq,
            timeline=[_timeline_entry(event)],
        )
    if event.seq <= incident.seq:
        return None

    changes: dict[str, object] = {
        "seq": event.seq,
        "updated_at": event.at,
        "severity": event.severity,
        "probable_root": event.probable_root,
        "problem_id": event.problem_id or incident.problem_id,
    }
    alert = event.alert
    if alert is not None and event.kind in _ALERT_STATUS:
        status = _ALERT_STATUS[event.kind]
        changes["alerts"] = {
            **incident.alerts,
            # Built from the event's alert, which was validated when it was made: nothing to check again.
            alert.fingerprint: IncidentAlert.model_construct(
                fingerprint=alert.fingerprint,
                status=status,
                labels=alert.labels,
                annotations=alert.annotations,
                starts_at=alert.starts_at,
                ends_at=alert.ends_at if status is AlertStatus.resolved else None,
                generator_url=alert.generator_url,
            ),
        }
    elif (
        alert is None and event.kind is IncidentEventKind.alert_resolved
    ):  # by fingerprint: GRP-25 released, GRP-29 expired
        ended = {"status": AlertStatus.resolved, "ends_at": event.at}
        changes["alerts"] = {
            **incident.alerts,
            **{fp: incident.alerts[fp].model_copy(update=ended) for fp in event.related if fp in incident.alerts},
        }
    elif alert is None and event.kind is IncidentEventKind.alert_added:  # by fingerprint: moved, its labels not at hand
        changes["alerts"] = {
            **incident.alerts,
            **{
                fp: IncidentAlert(fingerprint=fp, status=AlertStatus.firing, labels={}, starts_at=event.at)
                for fp in event.related
            },
        }
    if event.kind in _STATUS_AFTER:
        changes["status"] = _STATUS_AFTER[event.kind]
    if event.kind is IncidentEventKind.acknowledged:
        changes.update(acknowledged_at=event.at, acknowledged_by=event.actor)
    elif event.kind is IncidentEventKind.resolved:
        changes.update(resolved_at=event.at, resolved_by=event.actor)
    elif event.kind is IncidentEventKind.merged:
        changes.update(resolved_at=event.at, resolved_by=event.actor, merged_into=event.related[0], alerts={})
    elif event.kind is IncidentEventKind.merged_in:
        changes["merged_from"] = [*incident.merged_from, event.related[0]]
    elif event.kind is IncidentEventKind.alerts_split:
        changes["split_into"] = [*incident.split_into, event.related[0]]
        changes["alerts"] = {fp: a for fp, a in incident.alerts.items() if fp not in event.related[1:]}
    elif event.kind is IncidentEventKind.reopened:
        changes.update(resolved_at=None, resolved_by=None, acknowledged_at=None, acknowledged_by=None)
    elif event.kind is IncidentEventKind.flapping_started:
        changes["flapping"] = True
    elif event.kind is IncidentEventKind.flapping_ended:
        changes["flapping"] = False
    elif event.kind is IncidentEventKind.page_hold_ended:
        changes["page_held_until"] = event.at  # the hold ended here: the page went out then
    elif event.kind is IncidentEventKind.problem_detected:
        changes["problem_incidents"] = list(event.related)
    elif event.kind is IncidentEventKind.change_suspected:
        changes["suspect_changes"] = [
            *incident.suspect_changes,
            *(c for c in event.related if c not in incident.suspect_changes),
        ]
    if event.kind not in _OFF_TIMELINE:
        changes["timeline"] = [*incident.timeline, _timeline_entry(event)][-TIMELINE_LIMIT:]
    return incident.model_copy(update=changes)


def _timeline_entry(event: IncidentEvent) -> TimelineEntry:
    detail = event.comment
    if event.kind is IncidentEventKind.severity_changed and event.severity:
        detail = f"severity {event.severity}"
    elif event.kind is IncidentEventKind.root_changed and event.probable_root:
        detail = f"probable root {event.probable_root}"
    elif event.kind is IncidentEventKind.problem_detected:
        detail = f"problem {event.problem_id}: {event.comment} ({', '.join(event.related)})"
    return TimelineEntry.model_construct(  # every field is one of the validated event's, or a string made of them
        seq=event.seq,
        at=event.at,
        kind=event.kind,
        rule=event.rule,
        actor=event.actor,
        fingerprint=event.alert.fingerprint
        if event.alert
        else (event.related[0] if len(event.related) == 1 and event.kind in _BY_FINGERPRINT else None),
        detail=detail,
    )


def snapshot(incident: Incident, now: datetime) -> list[Alert]:
    """The incident's alerts as the read model shows them, as alerts again: what the grouping stage titles, ranks
    and lists moved alerts by (it keeps statuses only). Labels are fixed by the fingerprint, so they are exact."""
    return [
        Alert(
            fingerprint=a.fingerprint,
            status=a.status,
            labels=a.labels,
            annotations=a.annotations,
            starts_at=a.starts_at,
            ends_at=a.ends_at,
            generator_url=a.generator_url,
            source=f"incident:{incident.id}",
            received_at=now,
        )
        for a in incident.alerts.values()
    ]
