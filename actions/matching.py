"""Which runbooks an incident event triggers, and the data their templates see. Pure: no I/O.

Templates see:
- `incident`: id, title, status, severity, services, team, probable_root, opened_at, labels, alerts
  (labels, annotations, status of each), alert_count, firing_count, suspect_changes, merged_into (the incident
  a person merged it into, else None);
- `labels`: the labels every alert of the incident shares, plus the grouping labels;
- `event`: the trigger (`kind`, `at`);
- `params`: the runbook's rendered params; `steps`: `{id: {status, output}}` of the steps before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from actions.templates import RenderError, render
from correlation.conditions import conditions_hold, services_of, team_of
from correlation.topology import Topology
from schemas import Alert, Incident, IncidentEvent, IncidentEventKind
from schemas.regex import full_match
from schemas.runbook import Param, Run, Runbook, Trigger

TRIGGERS = {
    IncidentEventKind.opened: Trigger.opened,
    IncidentEventKind.severity_changed: Trigger.severity_changed,
    IncidentEventKind.resolved: Trigger.resolved,
}


def matches(
    runbook: Runbook,
    incident: Incident,
    severity: str | None,
    topology: Topology,
    service_label: str,
    extra: Alert | None = None,
) -> bool:
    return conditions_hold(runbook.match, incident, severity, topology, service_label, extra)


def triggered(
    runbooks: Iterable[Runbook],
    event: IncidentEvent,
    incident: Incident,
    topology: Topology,
    service_label: str,
    trigger: Trigger | None = None,
) -> list[Runbook]:
    """The runbooks this event starts (in the order given)."""
    trigger = trigger or TRIGGERS.get(event.kind)
    if trigger is None:
        return []
    severity = event.severity or incident.severity
    return [
        r for r in runbooks if trigger in r.on and matches(r, incident, severity, topology, service_label, event.alert)
    ]


def run_id(incident_id: str, runbook: str, trigger_event_id: str) -> str:
    """Stable across redeliveries of the trigger event: a redelivered event finds its run already there."""
    digest = hashlib.sha256(f"{incident_id}\x00{runbook}\x00{trigger_event_id}".encode()).hexdigest()
    return f"run-{digest[:20]}"


def common_labels(incident: Incident) -> dict[str, str]:
    alerts = [a.labels for a in incident.alerts.values()]
    shared = dict(alerts[0]) if alerts else {}
    for labels in alerts[1:]:
        shared = {k: v for k, v in shared.items() if labels.get(k) == v}
    return {**shared, **incident.group_labels}


def context(
    incident: Incident, topology: Topology, service_label: str, run: Run | None = None, trigger: str | None = None
) -> dict[str, Any]:
    services = services_of(incident, service_label)
    labels = common_labels(incident)
    steps = {sid: {"status": rec.status.value, "output": rec.output} for sid, rec in (run.steps.items() if run else [])}
    return {
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "status": incident.status.value,
            "severity": incident.severity,
            "services": services,
            "team": team_of(services, incident.probable_root, topology),
            "probable_root": incident.probable_root,
            "opened_at": incident.opened_at.isoformat(),
            "labels": labels,
            "alerts": [
                {"labels": a.labels, "annotations": a.annotations, "status": a.status.value}
                for a in incident.alerts.values()
            ],
            "alert_count": incident.alert_count,
            "firing_count": incident.firing_count,
            "suspect_changes": list(incident.suspect_changes),
            "merged_into": incident.merged_into,
        },
        "labels": labels,
        "event": {"kind": trigger or (run.trigger.value if run else "opened")},
        "params": dict(run.params) if run else {},
        "steps": steps,
    }


def render_params(runbook: Runbook, ctx: dict[str, Any]) -> dict[str, str]:
    """Render each param once; raises RenderError naming the param (a missing label, a pattern mismatch).

    A `pattern` is RE2 with Go's syntax, anchored to the whole value (schemas.regex), so a rendered label value
    cannot make the check take longer than linear time.
    """
    rendered: dict[str, str] = {}
    for name, spec in runbook.params.items():
        source, pattern = (spec.value, spec.pattern) if isinstance(spec, Param) else (spec, None)
        try:
            value = render(source, {**ctx, "params": rendered})
        except RenderError as exc:
            raise RenderError(f"params.{name}: {exc}") from exc
        if pattern is not None and not full_match(pattern, value):
            raise RenderError(
                f"params.{name}: value {value[:80]!r} does not match the pattern {pattern!r}; "
                "the run stops before any step"
            )
        rendered[name] = value
    return rendered
