"""The decisions the two stages take about alerts, derived from what each stage did. Pure.

The worker and the offline engine (replay, `firebreak check`) call the same functions, so `explain` reads the
same story live and in replay. Each function looks at one stage step: its input, its state before and after,
and its output; nothing here changes what the stages do.

Repeats of a firing alert are logged at the 1st, 2nd, 4th, 8th, ... repeat: a source that re-sends every
30 s for a day leaves 12 entries, not 2,880.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from correlation.dedup import DedupOutcome, FingerprintState
from correlation.grouping import GroupState, Phase, TrackedIncident, reaches_minimum, regroup_refusal
from correlation.rules import Rules
from schemas import (
    Alert,
    AlertEvent,
    AlertStatus,
    CommandAction,
    IncidentCommand,
    IncidentEvent,
    IncidentEventKind,
    Tick,
)
from schemas.decision import Decision, DecisionKind

# What each grouping rule means for the alert it moved (correlation/grouping.py has the table).
_JOINED = {
    "GRP-1": "opened a new incident (the policy does not wait)",
    "GRP-3": "opened its incident with the alerts collected during group_wait",
    "GRP-19": "opened its incident: the policy's minimum of alerts and services was reached",
    "GRP-5": "joined the open incident of its correlation key",
    "GRP-32": "joined the incident that suspects a change to its service",
    "GRP-6": "fired again inside the incident that already held it",
    "GRP-10": "reopened its resolved incident (inside the reopen window, or while the alert flaps)",
    "GRP-30": "moved here by a person's merge",
    "GRP-31": "moved to a new incident by a person's split",
}
_REGROUPS = {CommandAction.merge: "GRP-30", CommandAction.split: "GRP-31"}


# How `explain` names each piece of join evidence (IncidentEvent.evidence; correlation/grouping.py `_link`).
_EVIDENCE = {
    "topology": "topology",
    "time_gap_seconds": "time gap (s)",
    "session_gap_seconds": "since its last new alert (s)",
    "failure_domain": "failure domain",
    "change": "suspect change",
    "co_occurrence": "co-occurrence",
    "labels": "same labels",
    "opened_because": "because",
}


class _AlertCommon(TypedDict):
    """The fields that the decisions about one alert event share (`of_alert_event`), as keywords of Decision."""

    at: datetime
    fingerprint: str
    policy: str
    rule: str
    position: int


class _IncidentCommon(TypedDict):
    """The fields that the decision about one incident event carries (`_from_incident_event`), as keywords of Decision."""

    at: datetime
    incident_id: str
    policy: str
    rule: str
    position: int


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def route_reason(policy_name: str, rules: Rules) -> str:
    """Why the dedup stage routed an alert to this policy (the first whose matchers all hold)."""
    policies = rules.policies.policies
    index = next((i for i, p in enumerate(policies) if p.name == policy_name), None)
    if index is None:
        return f"policy `{policy_name}`, which the policies file no longer has"
    policy = policies[index]
    if not policy.match:
        return f"the catch-all policy `{policy.name}` (no policy before it matched)"
    return f"policy `{policy.name}` (#{index + 1}) matched {', '.join(str(m) for m in policy.match)}"


def after_dedup(
    alert: Alert,
    outcome: DedupOutcome,
    outputs: list[AlertEvent],
    entry: FingerprintState,
    now: datetime,
    position: int,
) -> list[Decision]:
    """What the dedup stage decided about the record at `position` when it emitted nothing downstream:
    repeats (sparsely), stale copies, resolves of alerts never seen firing. An emitted event's meaning is
    logged with it by the grouping stage (`after_group`), so an alert change costs one decisions record."""
    if outcome is DedupOutcome.redelivered or any(not e.refresh for e in outputs):
        return []
    fp = alert.fingerprint
    if outcome is DedupOutcome.duplicate_resolve and entry.duplicates == 0:
        return [
            Decision(
                at=now,
                kind=DecisionKind.deduplicated,
                fingerprint=fp,
                rule="DUP-4",
                labels=alert.labels,
                position=position,
                reason="resolved, but no firing of it was known: nothing to resolve",
            )
        ]
    if not _is_power_of_two(entry.duplicates):
        return []
    rule, what = {
        DedupOutcome.stale: (
            "DUP-5",
            "a late copy of a firing from before its last resolve, received within a minute of it: ignored",
        ),
        DedupOutcome.duplicate_resolve: ("DUP-4", "resolved again: already resolved"),
    }.get(outcome, ("DUP-2", "fires again while known to fire: nothing new"))
    kind = DecisionKind.stale if outcome is DedupOutcome.stale else DecisionKind.deduplicated
    return [
        Decision(
            at=now,
            kind=kind,
            fingerprint=fp,
            rule=rule,
            reason=f"repeat #{entry.duplicates}: {what}",
            position=position,
            detail={"repeats": str(entry.duplicates)},
        )
    ]


_FIRED = {
    "DUP-1": "fired",
    "DUP-6": "no longer silenced or inhibited",
    "DUP-7": "sent again after a quiet period longer than quiet_resolve (Firebreak had resolved it): fired anew",
    "DUP-10": "sent again after a person resolved its incident while it still fired (GRP-25): fired anew",
    "DUP-11": "a copy from before its last resolve, received after copies in flight would have arrived: its "
    "source still sends it firing, so it fired again",
}


def of_alert_event(event: AlertEvent, rules: Rules) -> list[Decision]:
    """What the dedup stage's event says about the alert: it fired (by which policy), was silenced or
    inhibited (by what), resolved, or flaps."""
    alert, fp = event.alert, event.alert.fingerprint
    policy, why = event.policy, route_reason(event.policy, rules)
    base: _AlertCommon = {
        "at": event.at,
        "fingerprint": fp,
        "policy": policy,
        "rule": event.rule or "DUP-1",
        "position": event.source_position,
    }
    detail = {"correlation_key": event.correlation_key}
    if event.status is AlertStatus.resolved:
        return [Decision(**base, kind=DecisionKind.resolved, reason="its source sent resolved", detail=detail)]
    if event.suppressed_by:
        by_kind, _, name = event.suppressed_by.partition(":")
        extra = dict(event.suppressed_detail)
        text = extra.pop("text", "") or event.suppressed_by
        decisions = [
            Decision(
                **base,
                kind=DecisionKind.silenced if by_kind == "silence" else DecisionKind.inhibited,
                labels=alert.labels,
                reason=f"{text}; recorded, kept out of incidents, nobody paged",
                detail={**detail, by_kind: name, **extra},
            )
        ]
    else:
        kind = DecisionKind.released if event.rule == "DUP-6" else DecisionKind.fired
        decisions = [
            Decision(
                **base,
                kind=kind,
                labels=alert.labels,
                detail=detail,
                reason=f"{_FIRED.get(event.rule, 'fired')}; {why}; correlation key {event.correlation_key}",
            )
        ]
    if event.flapping_until is not None:
        flapping = rules.policies.flapping
        decisions.append(
            Decision(
                **(base | {"rule": "GRP-14"}),
                kind=DecisionKind.flapping,
                reason=f"more than {flapping.transitions} state changes within {flapping.window}: notifications hold until "
                f"{event.flapping_until.isoformat()}",
                detail={"until": event.flapping_until.isoformat()},
            )
        )
    return decisions


def _fingerprint_of(item: object) -> str | None:
    return item.alert.fingerprint if isinstance(item, AlertEvent) else None


def _shortfall(inc: TrackedIncident, rules: Rules) -> str:
    """How far a pending incident is from its policy's minimum, in figures."""
    policy = rules.policies.get(inc.policy)
    alerts = len({a.fingerprint for a in inc.pending})
    services = len({s for a in inc.pending if (s := a.labels.get(rules.service_label))})
    need = [f"{alerts} of min_alerts {policy.min_alerts} alerts"] if policy.min_alerts > 1 else []
    if policy.min_services > 1:
        need.append(f"{services} of min_services {policy.min_services} services")
    return ", ".join(need)


def _pending_reason(inc: TrackedIncident, rules: Rules) -> str:
    policy = rules.policies.get(inc.policy)
    if reaches_minimum(inc.pending, policy, rules.service_label):
        return f"waiting for group_wait ({policy.group_wait}) to collect more alerts before the incident opens"
    return f"below the policy's minimum ({_shortfall(inc, rules)}) within min_within {policy.min_within}: nobody is paged yet"


def after_group(
    item: object,
    before: GroupState | None,
    after: GroupState | None,
    outputs: list[IncidentEvent],
    rules: Rules,
    now: datetime,
) -> list[Decision]:
    """What the grouping stage decided: for the alert it was given, and for the incidents it moved."""
    own = of_alert_event(item, rules) if isinstance(item, AlertEvent) and not item.refresh else []
    return own + _group(item, before, after, outputs, rules, now)


def _group(
    item: object,
    before: GroupState | None,
    after: GroupState | None,
    outputs: list[IncidentEvent],
    rules: Rules,
    now: datetime,
) -> list[Decision]:
    decisions: list[Decision] = []
    moved: set[str] = set()
    position = item.source_position if isinstance(item, AlertEvent) else -1
    for event in outputs:
        decision = _from_incident_event(event, position)
        if decision is not None:
            decisions.append(decision)
            if decision.fingerprint:
                moved.add(decision.fingerprint)
    fp = _fingerprint_of(item)
    if isinstance(item, AlertEvent) and fp not in moved and after is not None and item.status is AlertStatus.firing:
        if item.suppressed_by:
            decisions.append(
                Decision(
                    at=now,
                    position=position,
                    kind=DecisionKind.kept_out,
                    fingerprint=fp,
                    policy=item.policy,
                    rule="GRP-16",
                    reason=f"suppressed ({item.suppressed_by}): kept out of incidents",
                )
            )
        else:
            pending = next(
                (inc for inc in after.incidents.values() if inc.phase is Phase.pending and inc.holds(fp or "")), None
            )
            if pending is not None:
                decisions.append(
                    Decision(
                        at=now,
                        position=position,
                        kind=DecisionKind.held,
                        fingerprint=fp,
                        incident_id=pending.id,
                        policy=pending.policy,
                        rule="GRP-2",
                        reason=_pending_reason(pending, rules),
                    )
                )
    if isinstance(item, Tick) and before is not None:
        gone = [
            inc
            for inc in before.incidents.values()
            if inc.phase is Phase.pending and (after is None or inc.id not in after.incidents)
        ]
        for inc in gone:
            policy = rules.policies.get(inc.policy)
            for alert in inc.pending:
                decisions.append(
                    Decision(
                        at=now,
                        kind=DecisionKind.dropped,
                        fingerprint=alert.fingerprint,
                        incident_id=inc.id,
                        policy=inc.policy,
                        rule="GRP-20",
                        reason=f"its group did not reach the policy's minimum within {policy.min_within} "
                        f"({_shortfall(inc, rules)}): recorded, nobody paged",
                    )
                )
    if (
        isinstance(item, IncidentCommand)
        and item.action in _REGROUPS
        and not outputs
        and before is not None
        and after is not before
    ):  # applied now (a redelivery returns the entry as it is) and changed nothing
        decisions.append(_refused(item, before))
    if isinstance(item, AlertEvent) and item.status is AlertStatus.resolved and before is not None and fp not in moved:
        dropped = next(
            (
                inc
                for inc in before.incidents.values()
                if inc.phase is Phase.pending
                and inc.holds(fp or "")
                and (after is None or inc.id not in after.incidents)
            ),
            None,
        )
        if dropped is not None:
            decisions.append(
                Decision(
                    at=now,
                    position=position,
                    kind=DecisionKind.dropped,
                    fingerprint=fp,
                    incident_id=dropped.id,
                    policy=dropped.policy,
                    rule="GRP-4",
                    reason="every alert it collected resolved before it opened: nobody paged",
                )
            )
    return decisions


def _refused(command: IncidentCommand, before: GroupState) -> Decision:
    """A person's merge or split that changed nothing when its turn came, and why (`regroup_refusal`)."""
    source = before.incidents.get(command.incident_id)
    why = regroup_refusal(before.incidents, command) or "it no longer fitted"
    detail = {"actor": command.actor, **({"into": command.into} if command.into else {})}
    return Decision(
        at=command.at,
        kind=DecisionKind.command_refused,
        incident_id=command.incident_id,
        policy=source.policy if source else None,
        rule=_REGROUPS[command.action],
        detail=detail,
        reason=f"{command.action.value} by {command.actor} changed nothing: {why}",
    )


def _by_actor(event: IncidentEvent) -> str:
    """A person's event in words: what it did, who did it, and their comment (`merged into inc-2 by alice: one outage`)."""
    what, _, comment = event.comment.partition(": ")
    return f"{what} by {event.actor}" + (f": {comment}" if comment else "")


def _regrouped(event: IncidentEvent, base: _IncidentCommon) -> Decision | None:
    """A person's merge or split, on the incidents it changed (GRP-30, GRP-31)."""
    other, count = event.related[0], str(len(event.related) - 1)
    if event.kind is IncidentEventKind.merged:
        return Decision(
            **base,
            kind=DecisionKind.incident_merged,
            detail={"into": other, "actor": event.actor},
            reason=f"{_by_actor(event)}: its escalation stops; its alerts are {other}'s now",
        )
    if event.kind is IncidentEventKind.merged_in:
        return Decision(
            **base,
            kind=DecisionKind.incident_merged,
            reason=_by_actor(event),
            detail={"from": other, "actor": event.actor, "alerts": count},
        )
    if event.kind is IncidentEventKind.alerts_split:
        return Decision(
            **base,
            kind=DecisionKind.alerts_split,
            reason=_by_actor(event),
            detail={"into": other, "actor": event.actor, "alerts": count},
        )
    return None


def _from_incident_event(event: IncidentEvent, position: int) -> Decision | None:
    fp = event.alert.fingerprint if event.alert is not None else None
    if (
        fp is None
        and event.kind in (IncidentEventKind.alert_resolved, IncidentEventKind.alert_added)
        and len(event.related) == 1
    ):
        fp = event.related[0]  # an alert named by fingerprint: released by a person's resolve, expired, or moved
    base: _IncidentCommon = {
        "at": event.at,
        "incident_id": event.incident_id,
        "policy": event.policy,
        "rule": event.rule,
        "position": position,
    }
    kind = event.kind
    moved = event.rule in ("GRP-30", "GRP-31") and kind in (
        IncidentEventKind.alert_added,
        IncidentEventKind.alert_resolved,
    )
    if (kind is IncidentEventKind.alert_added or moved) and fp:
        why = _JOINED.get(event.rule, "joined the incident")
        if moved:
            why += f" ({_by_actor(event)}{', resolved' if kind is IncidentEventKind.alert_resolved else ''})"
        elif event.evidence:
            why += (
                " ("
                + "; ".join(f"{_EVIDENCE.get(name, name)}: {value}" for name, value in event.evidence.items())
                + ")"
            )
        return Decision(
            **base,
            kind=DecisionKind.joined,
            fingerprint=fp,
            reason=why,
            detail={"title": event.title or "", **{f"evidence.{k}": v for k, v in event.evidence.items()}},
        )
    if kind in (IncidentEventKind.merged, IncidentEventKind.merged_in, IncidentEventKind.alerts_split):
        return _regrouped(event, base)
    if kind is IncidentEventKind.alert_resolved and fp:
        quiet = event.comment.startswith("quiet")
        return Decision(
            **base,
            kind=DecisionKind.quiet_resolved if quiet else DecisionKind.alert_resolved,
            fingerprint=fp,
            reason=event.comment or "resolved inside its incident",
        )
    if kind in (IncidentEventKind.opened, IncidentEventKind.reopened):
        page = (
            "a page goes out if an escalation policy routes it"
            if event.notify
            else "no page while an alert of it flaps; the page waits for the hold-down to end"
        )
        detail = {"title": event.title or "", "severity": event.severity or "", "notify": str(event.notify).lower()}
        if event.page_held_until is not None:
            page = (
                f"transient pause: the page waits until {event.page_held_until.isoformat()} and goes out only if "
                f"it still fires then; {event.page_hold_reason}"
            )
            detail["page_held_until"] = event.page_held_until.isoformat()
        opening = f"opened, {event.comment}" if event.rule == "GRP-31" else kind.value
        return Decision(**base, kind=DecisionKind.incident_opened, reason=f"{opening}; {page}", detail=detail)
    if kind is IncidentEventKind.alerts_truncated:
        return Decision(**base, kind=DecisionKind.alerts_truncated, fingerprint=fp, reason=event.comment)
    if kind is IncidentEventKind.page_hold_ended and fp:
        return Decision(**base, kind=DecisionKind.page_hold_ended, fingerprint=fp, reason=event.comment)
    if kind is IncidentEventKind.resolved:
        who = f"by {event.actor}" if event.actor != "firebreak" else "by Firebreak: no alert of it fires"
        return Decision(
            **base,
            kind=DecisionKind.incident_resolved,
            reason=f"resolved {who}" + (f": {event.comment}" if event.comment else ""),
        )
    if kind is IncidentEventKind.acknowledged:
        return Decision(
            **base, kind=DecisionKind.incident_acknowledged, reason=f"acknowledged by {event.actor}: escalation stops"
        )
    return None
