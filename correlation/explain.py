"""`explain`: an alert's or an incident's decisions as a story people read. Pure; the API, the CLI and
`replay --explain` all print through here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from schemas.decision import Decision, DecisionKind

# Kinds that say nothing new in a one-line summary (the line before already implies them).
_QUIET = {
    DecisionKind.deduplicated,
    DecisionKind.kept_out,
    DecisionKind.incident_opened,
    DecisionKind.incident_acknowledged,
    DecisionKind.alert_resolved,
}


# At one instant: what the alert was, then the incident opening, then what became of the alert, then pages.
_ORDER = {
    **{
        k: 0
        for k in (
            DecisionKind.fired,
            DecisionKind.released,
            DecisionKind.silenced,
            DecisionKind.inhibited,
            DecisionKind.resolved,
            DecisionKind.stale,
            DecisionKind.deduplicated,
            DecisionKind.flapping,
        )
    },
    DecisionKind.incident_opened: 1,
    DecisionKind.escalation_started: 3,
    DecisionKind.paged: 4,
    DecisionKind.not_paged: 3,
    DecisionKind.page_held: 3,
}


def order(d: Decision) -> tuple[datetime, int, int]:
    """Time; within one instant (one batch of alerts shares a timestamp), the alert record's position, then
    the stage; decisions that follow from no alert record (ticks, pages) after those that do."""
    return d.at, d.position if d.position >= 0 else 1 << 62, _ORDER.get(d.kind, 2)


def story(fingerprint: str, decisions: Iterable[Decision]) -> list[Decision]:
    """One alert's decisions, with those of the incidents it joined that concern no one alert (the opening,
    pages, resolution), in time order."""
    pool = list(decisions)
    own = [d for d in pool if d.fingerprint == fingerprint]
    joined: dict[str, datetime] = {}
    for d in own:
        if d.kind is DecisionKind.joined and d.incident_id and d.incident_id not in joined:
            joined[d.incident_id] = d.at
    shared = [d for d in pool if d.fingerprint is None and d.incident_id in joined and d.at >= joined[d.incident_id]]
    # The stages downstream of dedup decide a little later than it did: what follows from one alert record
    # is placed at that record's time, so a repeat the dedup stage saw meanwhile does not cut in.
    record_time: dict[int, datetime] = {}
    for d in own:
        if d.position >= 0:
            record_time[d.position] = min(d.at, record_time.get(d.position, d.at))

    def placed(d: Decision) -> tuple[datetime, int, int]:
        at, position, rank = order(d)
        return record_time.get(d.position, at) if d.position >= 0 else at, position, rank

    return sorted(own + shared, key=placed)


def _step(d: Decision) -> str | None:
    if d.kind in _QUIET:
        return None
    if d.kind is DecisionKind.fired:
        return f"fired (policy {d.policy})"
    if d.kind is DecisionKind.silenced:
        return f"silenced by {d.detail.get('silence', '?')}"
    if d.kind is DecisionKind.inhibited:
        return f"inhibited by rule {d.detail.get('inhibit', '?')}"
    if d.kind in (DecisionKind.joined, DecisionKind.held, DecisionKind.dropped):
        return f"{d.kind.value} {d.incident_id} ({d.rule})"
    if d.kind is DecisionKind.paged:
        level = f" level {d.detail['level']}" if "level" in d.detail else ""
        return f"{d.detail.get('delivery', 'page')}{level} via {d.detail.get('channel', '?')}: {d.detail.get('result', '?')}"
    if d.kind is DecisionKind.escalation_started:
        return f"escalation policy {d.detail.get('escalation_policy', '?')}"
    if d.kind is DecisionKind.incident_resolved:
        return f"{d.incident_id} resolved"
    if d.kind is DecisionKind.incident_merged:
        into, source = d.detail.get("into") or d.incident_id, d.detail.get("from") or d.incident_id
        return f"{source} merged into {into} by {d.detail.get('actor', '?')}"
    if d.kind is DecisionKind.alerts_split:
        return (
            f"{d.detail.get('alerts', '?')} alerts split off {d.incident_id} into {d.detail.get('into', '?')} by "
            f"{d.detail.get('actor', '?')}"
        )
    if d.kind is DecisionKind.command_refused:
        return f"{d.rule} by {d.detail.get('actor', '?')} changed nothing"
    return d.kind.value.replace("_", " ")


def summary(decisions: Iterable[Decision]) -> str:
    """The story in one line: `fired (policy checkout) → joined inc-… (GRP-1) → page level 1 via slack: delivered`."""
    steps: list[str] = []
    for d in decisions:
        step = _step(d)
        if step is not None and (not steps or steps[-1] != step):
            steps.append(step)
    return " → ".join(steps) if steps else "nothing recorded"


def line(d: Decision) -> str:
    where = f"{d.incident_id} " if d.incident_id else ""
    return f"{d.at.strftime('%Y-%m-%d %H:%M:%S')}  {d.kind.value:<21} {d.rule:<7} {where}{d.reason}".rstrip()


def alert_report(fingerprint: str, decisions: list[Decision]) -> dict[str, Any]:
    """What the API returns and the CLI prints for one alert."""
    labels = next((d.labels for d in decisions if d.labels), None)
    return {
        "fingerprint": fingerprint,
        "labels": labels,
        "summary": summary(decisions),
        "decisions": [d.model_dump(mode="json") for d in decisions],
        "text": [line(d) for d in decisions],
    }


def incident_report(incident_id: str, decisions: list[Decision]) -> dict[str, Any]:
    """Why each alert is in the incident, and why each page went out (or did not)."""
    alerts: dict[str, list[str]] = {}
    for d in decisions:
        if d.fingerprint and d.kind in (
            DecisionKind.joined,
            DecisionKind.held,
            DecisionKind.dropped,
            DecisionKind.alert_resolved,
            DecisionKind.quiet_resolved,
        ):
            alerts.setdefault(d.fingerprint, []).append(
                f"{d.at.strftime('%H:%M:%S')} {d.kind.value} ({d.rule}): {d.reason}"
            )
    paging = (
        DecisionKind.escalation_started,
        DecisionKind.paged,
        DecisionKind.not_paged,
        DecisionKind.page_held,
        DecisionKind.page_hold_ended,
    )
    pages = [line(d) for d in decisions if d.kind in paging]
    lifecycle = [
        line(d)
        for d in decisions
        if (d.fingerprint is None or d.kind is DecisionKind.alerts_truncated) and d.kind not in paging
    ]
    report = {
        "incident_id": incident_id,
        "alerts": alerts,
        "pages": pages,
        "lifecycle": lifecycle,
        "decisions": [d.model_dump(mode="json") for d in decisions],
    }
    return {**report, "text": print_incident(report)}


def print_alert(report: dict[str, Any]) -> list[str]:
    labels = report["labels"]
    head = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) if labels else "(labels not in the log)"
    out = [f"alert {report['fingerprint']}  {head}", f"  {report['summary']}"]
    out += [f"  {text}" for text in report["text"]]
    return out


def print_incident(report: dict[str, Any]) -> list[str]:
    out = [f"incident {report['incident_id']}"]
    out += ["why each alert is in it:"] + [f"  {fp}: {'; '.join(steps)}" for fp, steps in report["alerts"].items()]
    out += ["pages:"] + ([f"  {p}" for p in report["pages"]] or ["  none recorded"])
    out += ["lifecycle:"] + [f"  {text}" for text in report["lifecycle"]]
    return out
