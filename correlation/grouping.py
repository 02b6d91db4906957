"""The grouping stage: incidents per correlation key, and their lifecycle.

One state entry per correlation key holds the incidents that key still cares about: open ones, one that
may be pending (collecting during group_wait), and resolved ones inside their reopen window. Inputs are
alert events, commands from people, and ticks (time passing). Every transition has a rule id, recorded on
the events it emits and so on the incident's timeline.

| rule   | incident status        | input                                      | result                                      |
|--------|------------------------|--------------------------------------------|---------------------------------------------|
| GRP-1  | none joinable          | firing, group_wait = 0                     | `opened`, `alert_added`                     |
| GRP-2  | none joinable          | firing, group_wait > 0 or a minimum > 1    | pending: collect, nothing emitted yet       |
| GRP-3  | pending, minimum met   | tick after group_wait                      | `opened`, `alert_added` per firing alert    |
| GRP-4  | pending                | every collected alert resolved             | dropped: it never opened, nobody paged      |
| GRP-19 | pending                | firing that reaches min_alerts and         | `opened` at once (group_wait over), else    |
|        |                        | min_services                               | at the tick after group_wait                |
| GRP-20 | pending, below minimum | tick after min_within                      | dropped: recorded upstream, nobody paged    |
| GRP-5  | open, joinable         | firing, new to it                          | `alert_added` (+ `severity_changed`,        |
|        |                        |                                            | `root_changed`)                             |
| GRP-6  | open, holds the alert  | firing again after resolving               | `alert_added` in the same incident          |
| GRP-7  | open                   | firing, already firing in it               | nothing (idempotent)                        |
| GRP-8  | open                   | resolved, was firing                       | `alert_resolved`                            |
| GRP-9  | open, none firing      | resolve_timeout passed (at once if 0)      | `resolved` by firebreak                     |
| GRP-10 | resolved, in window    | one of its alerts fires again              | `reopened`, `alert_added`                   |
|        | (or while it flaps and |                                            |                                             |
|        | no open one takes it)  |                                            |                                             |
| GRP-11 | resolved               | reopen window over (tick)                  | forgotten by the stage                      |
| GRP-12 | triggered              | acknowledge command                        | `acknowledged` by the actor                 |
| GRP-13 | open                   | resolve command                            | `resolved` by the actor                     |
| GRP-14 | open                   | an alert of it starts flapping             | `flapping_started`; notifications hold      |
| GRP-15 | flapping               | hold-down over (tick)                      | `flapping_ended`; notifications resume      |
| GRP-16 | any                    | firing, suppressed (silence, inhibition)   | nothing: recorded upstream with the reason  |
| GRP-17 | opening                | the key's incidents recur often enough     | `problem_detected`, linking the recurrences |
| GRP-18 | just opened            | changes to its services shortly before     | `change_suspected`, one per change          |
| GRP-23 | opening                | every alert it opens with usually resolves | `opened` carries `page_held_until` and the  |
|        |                        | by itself (transient_pause, from dedup)    | figures: the pager waits, pages if it fires |
| GRP-24 | open, page held        | firing that does not usually resolve by    | `page_hold_ended`: the pager pages now      |
|        | (transient pause)      | itself (no hold from dedup: a critical or  |                                             |
|        |                        | a steady alert) joins or fires again       |                                             |
| GRP-21 | open, quiet_resolve    | an alert not sent again for quiet_resolve  | `alert_resolved` by firebreak (then GRP-9)  |
|        |                        | (tick)                                     |                                             |
| GRP-22 | open, holds the alert  | refresh (still firing, sent again)         | nothing emitted: renews when it was seen    |
| GRP-28 | none holds it firing   | refresh (quiet_resolve ran out between two | as a firing: re-added (GRP-6), reopened     |
|        | (GRP-21 resolved it)   | copies the dedup stage took as repeats)    | (GRP-10) or a new incident (GRP-1/2/5)      |
| GRP-25 | open, alerts firing    | resolve command                            | `resolved` by the actor, then per firing    |
|        |                        |                                            | alert `alert_resolved` (released): its next |
|        |                        |                                            | copy fires anew (DUP-10), so it reopens     |
|        |                        |                                            | (GRP-10) or opens a new incident and pages  |
| GRP-26 | open                   | an alert from a webhook that left N alerts | `alerts_truncated` once per count: the      |
|        |                        | of its group out (truncatedAlerts)         | timeline says so, with the fix              |
| GRP-27 | open or pending, holds | the alert's annotations or generatorURL    | `alert_updated` (open): the incident shows  |
|        | the alert firing       | changed (DUP-9)                            | the latest; never a page                    |
| GRP-29 | open, an alert with an | its expiry passed with no newer copy       | `alert_resolved` by firebreak (then GRP-9), |
|        | expiry (endsAt, API v2)| (tick)                                     | as Alertmanager resolves it                 |
| GRP-30 | both open, one key     | merge command: a person merges the source  | `merged` ends the source (related: the      |
|        |                        | into the target                            | target); the target gets `merged_in`, then  |
|        |                        |                                            | per moved alert `alert_added` (firing) or   |
|        |                        |                                            | `alert_resolved`, then `severity_changed`,  |
|        |                        |                                            | `root_changed`, `flapping_started`,         |
|        |                        |                                            | `page_hold_ended` as they follow            |
| GRP-31 | open                   | split command: a person moves some of its  | `alerts_split` on it (related: the new      |
|        |                        | alerts, at least one firing, not all       | incident, the fingerprints), `root_changed`,|
|        |                        |                                            | `severity_changed` by the alerts left;      |
|        |                        |                                            | a new incident `opened` with them (related: |
|        |                        |                                            | the source), which pages on its own; GRP-9  |
|        |                        |                                            | if no firing alert remains in the source    |
| GRP-32 | open, suspects a change| firing on the changed service, within the  | `alert_added` with the change as evidence   |
|        | (GRP-18)               | change window (topology)                   |                                             |
| GRP-0  | any                    | input at a position already applied        | redelivery: re-emit what it emitted         |
| GRP-00 | any                    | alert event already applied (by source)    | nothing: a re-emission of a redelivery      |

Time-driven transitions (GRP-3, -9, -11, -15, -20, -21, -29) take effect at the moment they fall due, however
late the tick that finds them: the live worker (ticks every `tick_interval_seconds`), replay and check stamp
them alike (never before the entry's last input, so an incident's events stay in time order).

Joinable (`_joinable`): without topology, the key's current incident (with a `session_gap`: only while its last
new alert is that recent). With `topology: true`, among the incidents in the alert's failure domain (`failure_domain`
labels: cluster, region), the one with the closest link (`_link`): a change it suspects was made to the alert's
service (GRP-32); or the alert's service is a member service or depends on one whose last new alert is within the
session gap (per dependency hop, up to two); or the incident's probable root depends on the alert's service and
the incident started within the session gap (a cause comes first). A service that only shares a dependency with a
member is another failure's symptom and does not link. The join's `alert_added` carries that evidence with its
figures (`evidence`), and `explain` shows it. Either way the incident must be younger than the policy's
group_window (from when it opened) and smaller than its max_alerts. An alert is never in two open incidents: an
alert an open incident already holds always returns to that incident.

Merge and split (GRP-30, GRP-31) are a person's regrouping, applied in order with the key's alerts. Only
incidents of one key can merge: the stage owns each key's incidents, and an alert's later copies reach only
its own key's entry. Every alert of the source moves with its status, `seen` and expiry, so its later copies go
to the target (it holds them); the source leaves the entry at once (its read model shows it resolved, merged
into the target): nothing can reopen it, and an alert that would have joined it joins the target. A merge
ignores the target's `max_alerts` and `group_window`: a person chose it. A split's alerts likewise belong to the
new incident, whose title, severity and services come from their labels in the command's `snapshot` (the stage
keeps statuses, not labels); if every alert left in the source is in the snapshot, the source narrows its
services and probable root to theirs and takes the severity of its most severe firing one (a person took the
others out; otherwise severity never falls). A merge or split that no longer fits
when its turn comes (an incident resolved or gone, the alerts moved meanwhile) changes nothing;
`regroup_refusal` says why, for the decision log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from correlation.changes import describe, suspects
from correlation.evidence import Affinity, signature
from correlation.policy import DEFAULT_SESSION_GAP, Policy
from correlation.redelivery import first_time, note_applied, remember, replayed
from correlation.rules import Rules
from correlation.templates import render_title
from schemas import (
    SYSTEM_ACTOR,
    Alert,
    AlertEvent,
    AlertStatus,
    ChangeEvent,
    CommandAction,
    IncidentCommand,
    IncidentEvent,
    IncidentEventKind,
    Tick,
)
from schemas.durations import spoken


class Phase(StrEnum):
    pending = "pending"
    triggered = "triggered"
    acknowledged = "acknowledged"
    resolved = "resolved"


class TrackedIncident(BaseModel):
    """What the stage remembers about one incident of a key (stored state: tolerant of other releases)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    policy: str
    phase: Phase
    created_at: AwareDatetime
    opened_at: AwareDatetime | None = None
    title: str = ""
    severity: str | None = None
    services: list[str] = []
    probable_root: str | None = None
    problem_id: str | None = None
    seq: int = 0
    alerts: dict[str, AlertStatus] = {}
    pending: list[Alert] = []  # alerts collected during group_wait, emitted when the incident opens
    quiet_since: AwareDatetime | None = None  # when its last firing alert resolved
    resolved_at: AwareDatetime | None = None
    flapping_until: AwareDatetime | None = None
    # Policies with quiet_resolve: each firing alert's latest copy and when it came (GRP-21 resolves it from this).
    seen: dict[str, tuple[AwareDatetime, Alert]] = Field({}, exclude_if=lambda v: not v)
    # Transient pause: alerts collected while pending that usually resolve by themselves (hold seconds, figures).
    page_holds: dict[str, tuple[float, str]] = Field({}, exclude_if=lambda v: not v)
    # Opened under a transient pause: no page before this (GRP-24 ends it early).
    page_held_until: AwareDatetime | None = Field(None, exclude_if=lambda v: v is None)
    # GRP-26: the largest truncatedAlerts count already noted on its timeline.
    truncated_noted: int = Field(0, exclude_if=lambda v: not v)
    # GRP-29: firing alerts sent without status, and when each resolves (`expiry_deadline`) unless a newer copy
    # moves it (DUP-12).
    expires: dict[str, AwareDatetime] = Field({}, exclude_if=lambda v: not v)
    # Each member service's last new firing (or "" for alerts without one): the session gap runs from these.
    recent: dict[str, AwareDatetime] = Field({}, exclude_if=lambda v: not v)
    # The failure-domain label values its alerts carry (the policy's failure_domain): others never join it.
    domain: dict[str, str] = Field({}, exclude_if=lambda v: not v)
    # GRP-18: the changes it suspects, id -> (service, when): an alert on that service may join (GRP-32).
    suspects: dict[str, tuple[str, AwareDatetime]] = Field({}, exclude_if=lambda v: not v)
    # Policies that learn: each member signature's last new firing (correlation/evidence.py).
    signatures: dict[str, AwareDatetime] = Field({}, exclude_if=lambda v: not v)

    @property
    def is_open(self) -> bool:
        return self.phase in (Phase.triggered, Phase.acknowledged)

    @property
    def any_firing(self) -> bool:
        return any(status is AlertStatus.firing for status in self.alerts.values())

    def holds(self, fingerprint: str) -> bool:
        return fingerprint in self.alerts or any(a.fingerprint == fingerprint for a in self.pending)


class GroupState(BaseModel):
    """What the grouping stage remembers about one correlation key (stored state: tolerant of other releases)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    correlation_key: str
    group_labels: dict[str, str] = {}
    position: int
    current: str | None = None
    incidents: dict[str, TrackedIncident] = {}
    openings: dict[str, list[tuple[AwareDatetime, str]]] = {}  # signature -> recent (opened_at, incident id)
    emitted: list[tuple[int, AwareDatetime, list[IncidentEvent]]] = []  # recent output, for redelivery
    applied: dict[str, tuple[int, AwareDatetime]] = {}  # fingerprint -> (source position, when) last applied
    last_at: AwareDatetime | None = Field(None, exclude_if=lambda v: v is None)  # the time of the last input applied
    # Policies that learn: which signatures fire together and which people split apart (correlation/evidence.py).
    affinity: Affinity | None = Field(None, exclude_if=lambda v: v is None)
    # The last two fields, in this order: the worker reads them from the stored bytes' tail (adapters/entries.py).
    partition: int = 0
    due_at: AwareDatetime | None = None  # the earliest time a tick would change this entry

    def due(self, rules: Rules) -> datetime | None:
        """Compute `due_at` from the incidents and their policies."""
        return due_of(self.incidents.values(), rules)


def due_of(incidents: Iterable[TrackedIncident], rules: Rules) -> datetime | None:
    """The earliest time a tick would change one of these incidents, or None if no timer runs."""
    times = []
    for inc in incidents:
        policy = rules.policies.get(inc.policy)
        if inc.phase is Phase.pending:
            enough = reaches_minimum(inc.pending, policy, rules.service_label)
            times.append(inc.created_at + (policy.group_wait if enough else policy.min_within))
        elif inc.is_open and inc.quiet_since is not None:
            times.append(inc.quiet_since + policy.resolve_timeout)
        elif inc.phase is Phase.resolved and inc.resolved_at is not None:
            times.append(reopen_until(inc, policy))
        if inc.is_open and inc.flapping_until is not None:
            times.append(inc.flapping_until)
        if inc.is_open and policy.quiet_resolve is not None:
            times += [
                quiet_deadline(at, policy.quiet_resolve)
                for fp, (at, _) in inc.seen.items()
                if inc.alerts.get(fp) is AlertStatus.firing
            ]
        if inc.is_open:
            times += [at for fp, at in inc.expires.items() if inc.alerts.get(fp) is AlertStatus.firing]
    return min(times, default=None)


def reopen_until(inc: TrackedIncident, policy: Policy) -> datetime:
    """Until when a resolved incident reopens if one of its alerts fires again (GRP-10), then is forgotten (GRP-11):
    its reopen window, or longer while it flaps (the flapping hold-down): a flapping alert keeps one incident
    instead of opening one per flap."""
    assert inc.resolved_at is not None
    until = inc.resolved_at + policy.reopen_window
    return max(until, inc.flapping_until) if inc.flapping_until is not None else until


def incident_id(correlation_key: str, position: int, now: datetime) -> str:
    """Deterministic, so a redelivered opening yields the same id."""
    digest = hashlib.sha256(f"{correlation_key}|{position}|{now.isoformat()}".encode()).hexdigest()
    return f"inc-{digest[:12]}"


class _Step:
    """Collects the incidents changed and the events emitted while one input is applied."""

    def __init__(self, entry: GroupState, rules: Rules, now: datetime) -> None:
        self.entry = entry
        self.rules = rules
        self.now = now
        self.incidents = dict(entry.incidents)
        self.current = entry.current
        self.openings = dict(entry.openings)
        self.applied = entry.applied
        self.affinity = entry.affinity
        self.events: list[IncidentEvent] = []
        self.holds: dict[str, tuple[float, str]] = {}  # this input's alert, if its page may wait (transient pause)

    def emit(
        self,
        inc: TrackedIncident,
        kind: IncidentEventKind,
        rule: str,
        alert: Alert | None = None,
        actor: str = SYSTEM_ACTOR,
        comment: str = "",
        related: list[str] | None = None,
        hold: tuple[datetime, str] | None = None,
        evidence: dict[str, str] | None = None,
    ) -> TrackedIncident:
        seq = inc.seq + 1
        flapping = inc.flapping_until is not None and kind is not IncidentEventKind.flapping_ended
        self.events.append(
            IncidentEvent(
                event_id=f"{inc.id}:{seq}",
                kind=kind,
                incident_id=inc.id,
                correlation_key=self.entry.correlation_key,
                policy=inc.policy,
                group_labels=self.entry.group_labels,
                seq=seq,
                at=self.now,
                rule=rule,
                actor=actor,
                comment=comment,
                title=inc.title,
                severity=inc.severity,
                probable_root=inc.probable_root,
                notify=not flapping,
                problem_id=inc.problem_id,
                related=related or [],
                alert=alert,
                page_held_until=hold[0] if hold else None,
                page_hold_reason=hold[1] if hold else None,
                evidence=evidence or {},
            )
        )
        inc = inc.model_copy(update={"seq": seq})
        self.incidents[inc.id] = inc
        return inc

    def save(self, inc: TrackedIncident) -> TrackedIncident:
        self.incidents[inc.id] = inc
        return inc

    def drop(self, inc: TrackedIncident) -> None:
        del self.incidents[inc.id]
        if self.current == inc.id:
            self.current = None

    def service_of(self, alert: Alert) -> str | None:
        return alert.labels.get(self.rules.service_label) or None

    def add_alert(
        self,
        inc: TrackedIncident,
        alert: Alert,
        rule: str,
        flapping_until: datetime | None = None,
        evidence: dict[str, str] | None = None,
    ) -> TrackedIncident:
        """Record a firing alert in an open incident, then what it changes: severity, probable root, flapping,
        a transient pause (GRP-24: an alert without a hold of its own ends the incident's). `evidence`: what
        decided a join (GRP-5), recorded on its `alert_added`."""
        service = self.service_of(alert)
        services = sorted({*inc.services, service}) if service else inc.services
        inc = inc.model_copy(
            update={
                "alerts": {**inc.alerts, alert.fingerprint: AlertStatus.firing},
                "quiet_since": None,
                "services": services,
            }
        )
        inc = self.touch(self.saw(inc, alert), alert)
        inc = self.mark_flapping(inc, flapping_until, alert)
        inc = self.emit(inc, IncidentEventKind.alert_added, rule, alert, evidence=evidence)
        inc = self.note_truncation(inc, alert)
        severity = alert.labels.get(self.rules.policies.severity_label)
        if self.rules.policies.rank(severity) > self.rules.policies.rank(inc.severity):
            inc = self.emit(
                inc.model_copy(update={"severity": severity}), IncidentEventKind.severity_changed, rule, alert
            )
        root = self.root(inc)
        if root != inc.probable_root:
            inc = self.emit(inc.model_copy(update={"probable_root": root}), IncidentEventKind.root_changed, rule, alert)
        held_until = inc.page_held_until
        if (
            held_until is not None
            and held_until > self.now
            and inc.phase is Phase.triggered
            and alert.fingerprint not in self.holds
        ):
            name = alert.labels.get("alertname", alert.fingerprint)
            inc = self.emit(
                inc.model_copy(update={"page_held_until": None}),
                IncidentEventKind.page_hold_ended,
                "GRP-24",
                alert,
                comment=f"{name} fires and does not usually resolve by itself: the page held until "
                f"{held_until.isoformat()} goes out now",
            )
        return inc

    def touch(self, inc: TrackedIncident, alert: Alert) -> TrackedIncident:
        """Note a new firing of `alert` in `inc` (open or collecting): its service's last new firing, from which
        the session gap runs, and its failure-domain labels."""
        policy = self.rules.policies.get(inc.policy)
        update: dict[str, object] = {"recent": {**inc.recent, self.service_of(alert) or "": self.now}}
        if policy.topology and any(name not in inc.domain and alert.labels.get(name) for name in policy.failure_domain):
            update["domain"] = {
                **inc.domain,
                **{n: v for n in policy.failure_domain if n not in inc.domain and (v := alert.labels.get(n))},
            }
        if policy.learn:
            update["signatures"] = {**inc.signatures, self.signature(alert): self.now}
        return inc.model_copy(update=update)

    def signature(self, alert: Alert) -> str:
        return signature(alert.labels, self.rules.service_label)

    def people_said(self, policy: str, left: Iterable[str], right: Iterable[str], *, merged: bool) -> None:
        """A person merged (`merged`) or split apart incidents with these services: on a policy that learns, every
        pair across them counts (correlation/evidence.py), so the decision shapes the next joins."""
        if not self.rules.policies.get(policy).learn:
            return
        label = self.rules.service_label
        sigs = [{signature({label: s}, label) for s in side if s} for side in (left, right)]
        self.affinity = (self.affinity or Affinity()).people_said(sigs[0], sigs[1], self.now, merged=merged)

    def learn_firing(self, policy: Policy, alert: Alert) -> None:
        """A new firing on a policy that learns: count it and what fired with it (correlation/evidence.py)."""
        gap = policy.session_gap or DEFAULT_SESSION_GAP
        self.affinity = (self.affinity or Affinity()).saw_firing(self.signature(alert), self.now, gap)

    def note_truncation(self, inc: TrackedIncident, alert: Alert) -> TrackedIncident:
        """GRP-26: an alert came in a webhook that left alerts of its group out; say so once per count."""
        if alert.truncated_alerts <= inc.truncated_noted:
            return inc
        count = alert.truncated_alerts
        receiver = (
            alert.source.removeprefix("alertmanager:") if alert.source.startswith("alertmanager:") else alert.source
        )
        return self.emit(
            inc.model_copy(update={"truncated_noted": count}),
            IncidentEventKind.alerts_truncated,
            "GRP-26",
            alert,
            comment=f"Alertmanager ({receiver}) left {count} alerts of this group out of its webhook "
            "(truncatedAlerts): this incident may be missing them. Raise max_alerts on that "
            "receiver's webhook_configs (0 sends all)",
        )

    def saw(self, inc: TrackedIncident, alert: Alert) -> TrackedIncident:
        """Note a firing alert's copy: when it was last sent, for quiet_resolve (policies without it keep nothing),
        and its expiry, for GRP-29 (alerts without one keep nothing)."""
        expires = {k: v for k, v in inc.expires.items() if k != alert.fingerprint}
        if alert.expires_at is not None:
            expires[alert.fingerprint] = expiry_deadline(alert.expires_at, self.now)
        if expires != inc.expires:
            inc = inc.model_copy(update={"expires": expires})
        if self.rules.policies.get(inc.policy).quiet_resolve is None:
            return inc
        return inc.model_copy(update={"seen": {**inc.seen, alert.fingerprint: (self.now, alert)}})

    def root(self, inc: TrackedIncident) -> str | None:
        if self.rules.policies.get(inc.policy).topology:
            return self.rules.topology.root_of(inc.services)
        return inc.services[0] if len(inc.services) == 1 else None

    def mark_flapping(self, inc: TrackedIncident, until: datetime | None, alert: Alert | None) -> TrackedIncident:
        if until is None or (inc.flapping_until is not None and inc.flapping_until >= until):
            return inc
        starting = inc.flapping_until is None
        inc = inc.model_copy(update={"flapping_until": until})
        if starting and inc.is_open:
            inc = self.emit(inc, IncidentEventKind.flapping_started, "GRP-14", alert)
        return inc

    def open(
        self,
        inc: TrackedIncident,
        alerts: list[Alert],
        rule: str,
        flapping_until: datetime | None,
        evidence: dict[str, str] | None = None,
    ) -> TrackedIncident:
        """Open with the given alerts: the first names it, the most severe sets its starting severity. `evidence`:
        why the first did not join an open incident, on its `alert_added`."""
        policy = self.rules.policies.get(inc.policy)
        label = self.rules.policies.severity_label
        severity = max((a.labels.get(label) for a in alerts), key=self.rules.policies.rank)
        services = sorted({s for a in alerts if (s := self.service_of(a))})
        inc = inc.model_copy(
            update={
                "phase": Phase.triggered,
                "opened_at": self.now,
                "pending": [],
                "title": _title(policy, self.entry, alerts[0]),
                "severity": severity,
                "services": services,
                "flapping_until": flapping_until,
            }
        )
        inc = inc.model_copy(update={"probable_root": self.root(inc)})
        holds = {**inc.page_holds, **self.holds}
        hold = None
        if all(a.fingerprint in holds for a in alerts):  # every alert it opens with usually resolves by itself
            seconds, why = min(holds[a.fingerprint] for a in alerts)
            hold = (self.now + timedelta(seconds=seconds), why)
        inc = self.emit(
            inc.model_copy(update={"page_holds": {}}),
            IncidentEventKind.opened,
            rule,
            alerts[0],
            comment=f"page held until {hold[0].isoformat()}: {hold[1]}" if hold else "",
            hold=hold,
        )
        for alert in alerts:
            inc = self.add_alert(inc, alert, rule, evidence=evidence if alert is alerts[0] else None)
        if hold is not None:
            inc = self.save(inc.model_copy(update={"page_held_until": hold[0]}))
        return self.detect_problem(inc)

    def detect_problem(self, inc: TrackedIncident) -> TrackedIncident:
        """GRP-17: count this opening against the key's recent ones; enough recurrences make a problem."""
        rule = self.rules.policies.problems
        signature = f"{self.entry.correlation_key}|{inc.probable_root or ''}"
        recent = [(at, iid) for at, iid in self.openings.get(signature, []) if at > self.now - rule.within]
        recent.append((self.now, inc.id))
        self.openings[signature] = recent[-rule.recurrences * 4 :]
        if len(recent) < rule.recurrences:
            return inc
        linked = [iid for _, iid in recent]
        problem = "prb-" + hashlib.sha256(f"{signature}|{linked[0]}".encode()).hexdigest()[:12]
        inc = inc.model_copy(update={"problem_id": problem})
        return self.emit(
            inc,
            IncidentEventKind.problem_detected,
            "GRP-17",
            comment=f"{len(recent)} incidents of this kind within {rule.within}",
            related=linked,
        )

    def resolve(self, inc: TrackedIncident, rule: str, actor: str = SYSTEM_ACTOR, comment: str = "") -> TrackedIncident:
        inc = inc.model_copy(
            update={"phase": Phase.resolved, "resolved_at": self.now, "quiet_since": None, "page_held_until": None}
        )
        inc = self.emit(inc, IncidentEventKind.resolved, rule, actor=actor, comment=comment)
        if self.current == inc.id:
            self.current = None
        return inc

    def finish(self, position: int, partition: int) -> tuple[GroupState, list[IncidentEvent]]:
        state = self.entry.model_copy(
            update={
                "position": position,
                "partition": partition,
                "current": self.current,
                "incidents": self.incidents,
                "openings": {k: v for k, v in self.openings.items() if v},
                "applied": self.applied,
                "affinity": self.affinity,
                "last_at": self.now,
                "emitted": remember(self.entry.emitted, position, self.now, self.events),
            }
        )
        return state.model_copy(update={"due_at": state.due(self.rules)}), self.events


def _title(policy: Policy, entry: GroupState, alert: Alert) -> str:
    context = {
        "labels": alert.labels,
        "annotations": alert.annotations,
        "group_labels": entry.group_labels,
        "policy": policy.name,
    }
    if policy.title is not None:
        rendered = render_title(policy.title, context)
        if rendered:
            return rendered
    labels = {k: v for k, v in entry.group_labels.items() if v}
    name = labels.pop("alertname", None) or alert.labels.get("alertname")
    rest = ", ".join(labels.values()) or alert.labels.get("service", "")
    if name and rest:
        return f"{name} on {rest}"
    return name or rest or entry.correlation_key


def reaches_minimum(pending: list[Alert], policy: Policy, service_label: str) -> bool:
    """Whether the alerts a pending incident collected are enough to open it (GRP-19)."""
    if len({a.fingerprint for a in pending}) < policy.min_alerts:
        return False
    return (
        policy.min_services <= 1
        or len({s for a in pending if (s := a.labels.get(service_label))}) >= policy.min_services
    )


def _open_if_ready(step: _Step, inc: TrackedIncident, policy: Policy) -> None:
    """GRP-19: a pending incident whose group_wait is over opens as soon as it reaches its minimum."""
    if step.now >= inc.created_at + policy.group_wait and reaches_minimum(
        inc.pending, policy, step.rules.service_label
    ):
        step.open(inc, inc.pending, "GRP-19", inc.flapping_until)


def _within_limits(step: _Step, inc: TrackedIncident, policy: Policy) -> bool:
    if inc.phase is Phase.resolved or len(inc.alerts) + len(inc.pending) >= policy.max_alerts:
        return False
    started = inc.opened_at or inc.created_at
    return policy.group_window is None or step.now - started <= policy.group_window


def _joinable(step: _Step, policy: Policy, alert: Alert) -> tuple[TrackedIncident | None, dict[str, str]]:
    """The incident a new firing alert joins (GRP-5), and the evidence that decided it; (None, {}) opens a new one.

    Without topology: the key's current incident. With topology: of the incidents in the alert's failure domain,
    the one with the closest link (`_link`: the most recent linked member). Either way within the policy's limits
    (`_within_limits`) and, with a session gap, while the incident's last new alert is that recent."""
    if not policy.topology:
        inc = step.incidents.get(step.current) if step.current else None
        if inc is None or not _within_limits(step, inc, policy):
            return None, {}
        same = ", ".join(f"{k}={v}" for k, v in step.entry.group_labels.items()) or step.entry.correlation_key
        if policy.session_gap is None:
            return inc, {"labels": same}
        quiet = step.now - _last_new(inc)
        if quiet > policy.session_gap:
            return None, {}
        return inc, {"labels": same, "session_gap_seconds": _seconds(quiet)}
    service = step.service_of(alert)
    if service is None:
        return None, {}
    best: tuple[datetime, datetime, TrackedIncident, dict[str, str]] | None = None
    for inc in step.incidents.values():
        if not _within_limits(step, inc, policy) or not _same_domain(inc.domain, alert.labels, policy.failure_domain):
            continue
        link = _link(step, inc, policy, alert, service)
        if link is not None and (best is None or (link[0], inc.created_at) > best[:2]):
            best = (link[0], inc.created_at, inc, link[1])
    if best is None:
        return None, {}
    evidence = best[3]
    domain = {n: v for n in policy.failure_domain if (v := alert.labels.get(n))}
    if domain:
        evidence["failure_domain"] = ", ".join(f"{n}={v}" for n, v in domain.items())
    return best[2], evidence


def _last_new(inc: TrackedIncident) -> datetime:
    """When the incident last took a new firing alert (entries from before `recent` existed: when it opened)."""
    return max(inc.recent.values(), default=inc.opened_at or inc.created_at)


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.0f}"


def _same_domain(domain: dict[str, str], labels: dict[str, str], names: tuple[str, ...]) -> bool:
    """Whether an alert's failure-domain labels agree with an incident's (a label missing on either side agrees)."""
    return all(not (value := labels.get(name)) or domain.get(name, value) == value for name in names)


HOPS_COUNTED = 2  # a link to a member this many dependency hops upstream or more may span that many session gaps


def _link(
    step: _Step, inc: TrackedIncident, policy: Policy, alert: Alert, service: str
) -> tuple[datetime, dict[str, str]] | None:
    """How a new alert of `service` links to `inc` on a topology policy, as (the linked member's last new firing,
    the evidence), or None. In order:

    1. a change the incident suspects (GRP-18) was made to `service` within the change window (GRP-32);
    2. `service` is a member service or depends on one (the alert may be its symptom), and that member's last new
       firing was within the session gap, times the dependency hops between them up to HOPS_COUNTED (a failure
       reaches each next service a hop later; a quiet service in between still passes it on);
    3. the incident's probable root depends on `service` (it may be the cause), and the incident started within
       the session gap: a cause comes before its effects, an upstream alert much later is another failure;
    4. with `learn`: a member signature whose last new firing was within the session gap has fired together
       with the alert's often enough (`Affinity.learned_link`), catalog or not.

    A service that merely shares a dependency with a member (a sibling symptom of another failure) does not link.
    With `learn`, no link goes through a member whose signature people split apart from the alert's.
    Without a session gap (`session_gap: null`) time is no evidence: any link on the chain joins."""
    window = step.rules.policies.change_window
    for change_id, (changed, at) in sorted(inc.suspects.items()):
        if changed == service and step.now - at <= window:
            return at, {
                "change": f"{change_id}: the incident suspects a change to {service} at {at.isoformat()}, "
                f"within the change window ({spoken(window)})"
            }
    recent = inc.recent or dict.fromkeys(inc.services, inc.opened_at or inc.created_at)
    topology, gap = step.rules.topology, policy.session_gap
    hops = topology.hops(service)
    linked = [(at, member) for member, at in recent.items() if member == service or member in hops]
    if policy.learn and step.affinity is not None:
        linked = [(at, m) for at, m in linked if not _split_from(step, inc, alert, m)]
    if gap is not None:
        linked = [(at, m) for at, m in linked if step.now - at <= gap * min(HOPS_COUNTED, max(1, hops.get(m, 1)))]
    if linked:
        at, member = max(linked)
        how = (
            f"another alert of {service}"
            if member == service
            else f"{service} depends on {member} ({hops[member]} hop{'s' if hops[member] > 1 else ''})"
        )
        return at, {"topology": how, "time_gap_seconds": _seconds(step.now - at)}
    root = inc.probable_root or topology.root_of(m for m in recent if m)
    started = step.now - inc.created_at
    if (
        root is not None
        and service in topology.upstream.get(root, frozenset())
        and (gap is None or started <= gap)
        and not (policy.learn and step.affinity is not None and _split_from(step, inc, alert, root))
    ):
        return inc.created_at, {
            "topology": f"{root}, its probable root, depends on {service}: {service} may be the cause",
            "time_gap_seconds": _seconds(started),
        }
    return _learned(step, inc, policy, alert)


def _split_from(step: _Step, inc: TrackedIncident, alert: Alert, member: str) -> bool:
    """Whether people split the alert's signature apart from a signature of `member` (a service) in `inc`."""
    assert step.affinity is not None
    own = step.signature(alert)
    return any(sig.endswith(f"@{member}") and step.affinity.split_apart(own, sig, step.now) for sig in inc.signatures)


def _learned(step: _Step, inc: TrackedIncident, policy: Policy, alert: Alert) -> tuple[datetime, dict[str, str]] | None:
    """Rule 4 of `_link`: the most recent member signature, within the session gap, learned to fire with the alert's."""
    if not policy.learn or step.affinity is None:
        return None
    own, gap = step.signature(alert), policy.session_gap or DEFAULT_SESSION_GAP
    for sig, at in sorted(inc.signatures.items(), key=lambda item: item[1], reverse=True):
        if step.now - at > gap:
            break
        found = step.affinity.learned_link(own, sig, step.now)
        if found is not None:
            return at, {**found, "time_gap_seconds": _seconds(step.now - at)}
    return None


def _holding(step: _Step, fingerprint: str, *, open_only: bool) -> TrackedIncident | None:
    """The incident that holds this alert: open (or pending) ones first, then resolved ones."""
    for inc in step.incidents.values():
        if inc.phase is not Phase.resolved and inc.holds(fingerprint):
            return inc
    if open_only:
        return None
    resolved = [inc for inc in step.incidents.values() if inc.phase is Phase.resolved and fingerprint in inc.alerts]
    return max(resolved, key=lambda inc: inc.resolved_at or inc.created_at, default=None)


def _on_firing(step: _Step, event: AlertEvent, position: int) -> None:
    alert = event.alert
    policy = step.rules.policies.get(event.policy)
    if event.page_hold_seconds is not None:
        step.holds[alert.fingerprint] = (event.page_hold_seconds, event.page_hold_reason)
    inc = _holding(step, alert.fingerprint, open_only=False)
    if inc is not None and inc.phase is Phase.pending:
        pending = [a for a in inc.pending if a.fingerprint != alert.fingerprint] + [alert]
        inc = step.touch(inc.model_copy(update={"pending": pending, "page_holds": _held(inc, step, alert)}), alert)
        _open_if_ready(step, step.save(inc), policy)
        return
    if inc is not None and inc.is_open:
        if inc.alerts.get(alert.fingerprint) is not AlertStatus.firing:
            step.add_alert(inc, alert, "GRP-6", event.flapping_until)
        else:
            step.mark_flapping(step.save(step.saw(inc, alert)), event.flapping_until, alert)
        return
    if event.suppressed_by:
        return  # GRP-16
    if (
        inc is not None
        and inc.resolved_at is not None
        and step.now <= reopen_until(inc, policy)
        # Past its reopen window only the flapping hold-down keeps it: an open incident the alert joins wins then,
        # as it did before the alert flapped, so the key keeps one open incident.
        and (step.now <= inc.resolved_at + policy.reopen_window or _joinable(step, policy, alert)[0] is None)
    ):
        inc = step.mark_flapping(
            inc.model_copy(update={"phase": Phase.triggered, "resolved_at": None}), event.flapping_until, alert
        )
        inc = step.emit(inc, IncidentEventKind.reopened, "GRP-10", alert)
        step.add_alert(inc, alert, "GRP-10")
        step.current = inc.id
        return
    inc, evidence = _joinable(step, policy, alert)
    if inc is not None:
        if inc.phase is Phase.pending:
            inc = step.touch(
                inc.model_copy(update={"pending": [*inc.pending, alert], "page_holds": _held(inc, step, alert)}), alert
            )
            _open_if_ready(step, step.save(inc), policy)
        else:
            step.add_alert(inc, alert, "GRP-32" if "change" in evidence else "GRP-5", event.flapping_until, evidence)
        return
    new = TrackedIncident(
        id=incident_id(event.correlation_key, position, step.now),
        policy=policy.name,
        phase=Phase.pending,
        created_at=step.now,
    )
    step.current = new.id
    if policy.holds_back:
        new = step.touch(
            new.model_copy(
                update={
                    "pending": [alert],
                    "flapping_until": event.flapping_until,
                    "page_holds": _held(new, step, alert),
                }
            ),
            alert,
        )
        _open_if_ready(step, step.save(new), policy)
        return
    step.open(new, [alert], "GRP-1", event.flapping_until, {"opened_because": _why_new(step, policy, alert)})


def _why_new(step: _Step, policy: Policy, alert: Alert) -> str:
    """Why a new firing alert joined no open incident of its key (for `explain`): the first rule it failed."""
    open_ = [inc for inc in step.incidents.values() if inc.phase is not Phase.resolved]
    gap = spoken(policy.session_gap) if policy.session_gap else "none"
    window = spoken(policy.group_window) if policy.group_window else "none"
    if not policy.topology:
        inc = step.incidents.get(step.current) if step.current else None
        if inc is None or inc.phase is Phase.resolved:
            return "no incident of its key was open"
        if len(inc.alerts) + len(inc.pending) >= policy.max_alerts:
            return f"the key's incident {inc.id} holds max_alerts ({policy.max_alerts})"
        if policy.group_window is not None and step.now - (inc.opened_at or inc.created_at) > policy.group_window:
            return f"the key's incident {inc.id} opened more than group_window ({window}) ago"
        return f"the key's incident {inc.id} took no new alert within session_gap ({gap})"
    if step.service_of(alert) is None:
        return f"it has no {step.rules.service_label} label, which topology joins by"
    if not open_:
        return "no incident of its key was open"
    usable = [inc for inc in open_ if _within_limits(step, inc, policy)]
    if not usable:
        return (
            f"the {len(open_)} open incident(s) of its key are past group_window ({window}) or hold "
            f"max_alerts ({policy.max_alerts})"
        )
    here = [inc for inc in usable if _same_domain(inc.domain, alert.labels, policy.failure_domain)]
    if not here:
        return f"the {len(usable)} open incident(s) of its key are in other failure domains ({', '.join(policy.failure_domain)})"
    return (
        f"none of the {len(here)} open incident(s) in its failure domain links to it: no member of its own service or "
        f"one it depends on alerted within session_gap ({gap}, per hop up to two), none is young enough "
        "for it to be the cause of its probable root, and none suspects a change to its service"
    )


def _held(inc: TrackedIncident, step: _Step, alert: Alert) -> dict[str, tuple[float, str]]:
    """A pending incident's holds once `alert` (this input's) is collected: kept only if it may wait."""
    holds = {k: v for k, v in inc.page_holds.items() if k != alert.fingerprint}
    return {**holds, alert.fingerprint: step.holds[alert.fingerprint]} if alert.fingerprint in step.holds else holds


def _on_refresh(step: _Step, event: AlertEvent, position: int) -> None:
    """GRP-22: a firing alert sent again: renew when its open incident last saw it.
    GRP-27: if its annotations or generatorURL changed (`updated`), the incident takes the new copy.
    GRP-28: if no incident holds it firing any more (quiet_resolve ran out between two of its source's
    copies, which the dedup stage, counting every copy, took as repeats), it fires again, as a firing would."""
    alert = event.alert
    inc = _holding(step, alert.fingerprint, open_only=True)
    if inc is None or (inc.is_open and inc.alerts.get(alert.fingerprint) is not AlertStatus.firing):
        _on_firing(step, event, position)
        return
    if inc.phase is Phase.pending:
        if event.updated:
            step.save(
                inc.model_copy(
                    update={"pending": [alert if a.fingerprint == alert.fingerprint else a for a in inc.pending]}
                )
            )
        return
    inc = step.save(step.saw(inc, alert))
    if event.updated:
        step.note_truncation(step.emit(inc, IncidentEventKind.alert_updated, "GRP-27", alert), alert)


def quiet_deadline(refreshed: datetime, quiet: timedelta) -> datetime:
    """When GRP-21 resolves an alert last refreshed at `refreshed`. The dedup stage refreshes a copy (DUP-8) once
    a third of quiet_resolve has passed since the last refresh, so the source's last copy came less than a third
    after `refreshed`: resolving at `refreshed` + 4/3 of quiet_resolve is never before quiet_resolve has passed
    since that copy, and at most a third after."""
    return refreshed + quiet + quiet / 3


def _quiet_resolve(step: _Step, inc: TrackedIncident, policy: Policy) -> TrackedIncident:
    """GRP-21: resolve the firing alerts whose source has not sent them for quiet_resolve (`quiet_deadline`)."""
    assert policy.quiet_resolve is not None
    for fp, (at, alert) in sorted(inc.seen.items()):
        if inc.alerts.get(fp) is AlertStatus.firing and step.now >= quiet_deadline(at, policy.quiet_resolve):
            seen = {k: v for k, v in inc.seen.items() if k != fp}
            inc = inc.model_copy(update={"alerts": {**inc.alerts, fp: AlertStatus.resolved}, "seen": seen})
            resolved = alert.model_copy(update={"status": AlertStatus.resolved, "ends_at": step.now})
            inc = step.emit(
                inc,
                IncidentEventKind.alert_resolved,
                "GRP-21",
                resolved,
                comment=f"quiet for {policy.quiet_resolve}: its source has sent no copy for at least that "
                f"long (the last Firebreak took note of came at {at.isoformat()}; copies are noted "
                f"every {policy.quiet_resolve / 3})",
            )
    if not inc.any_firing and inc.quiet_since is None:
        inc = step.save(inc.model_copy(update={"quiet_since": step.now}))
    return inc


def expiry_deadline(expires_at: datetime, now: datetime) -> datetime:
    """When GRP-29 resolves an alert whose copy at `now` expires at `expires_at`. The dedup stage passes a later
    expiry on only once the known one is less than 3/4 of the new one's life away (`dedup.expiry_news`), so the
    source's last copy expires at most a third of that life later: resolving then is never before the last
    copy's endsAt, and at most a third of its life after it (80 s for Prometheus' four minutes)."""
    return expires_at + max(expires_at - now, timedelta(0)) / 3


def _expire(step: _Step, inc: TrackedIncident) -> TrackedIncident:
    """GRP-29: resolve the firing alerts whose expiry (the endsAt of an alert sent without status) passed with no
    newer copy, as Alertmanager resolves an alert whose endsAt has passed."""
    for fp, expiry in sorted(inc.expires.items()):
        if step.now < expiry:
            continue
        expires = {k: v for k, v in inc.expires.items() if k != fp}
        if inc.alerts.get(fp) is not AlertStatus.firing:
            inc = step.save(inc.model_copy(update={"expires": expires}))
            continue
        inc = inc.model_copy(
            update={
                "alerts": {**inc.alerts, fp: AlertStatus.resolved},
                "expires": expires,
                "seen": {k: v for k, v in inc.seen.items() if k != fp},
            }
        )
        inc = step.emit(
            inc,
            IncidentEventKind.alert_resolved,
            "GRP-29",
            related=[fp],
            comment=f"expired: its endsAt passed with no newer copy from its source (resolved at "
            f"{expiry.isoformat()}, at most a third of its life after its last endsAt)",
        )
    if not inc.any_firing and inc.quiet_since is None:
        inc = step.save(inc.model_copy(update={"quiet_since": step.now}))
    return inc


def _on_resolved(step: _Step, event: AlertEvent) -> None:
    fingerprint = event.alert.fingerprint
    inc = _holding(step, fingerprint, open_only=True)
    if inc is None:
        return
    policy = step.rules.policies.get(inc.policy)
    if inc.phase is Phase.pending:
        pending = [a for a in inc.pending if a.fingerprint != fingerprint]
        if pending:
            step.save(inc.model_copy(update={"pending": pending}))
        else:
            step.drop(inc)  # GRP-4
        return
    if inc.alerts.get(fingerprint) is not AlertStatus.firing:
        return
    inc = inc.model_copy(
        update={
            "alerts": {**inc.alerts, fingerprint: AlertStatus.resolved},
            "seen": {k: v for k, v in inc.seen.items() if k != fingerprint},
        }
    )
    inc = step.mark_flapping(inc, event.flapping_until, event.alert)
    inc = step.emit(inc, IncidentEventKind.alert_resolved, "GRP-8", event.alert)
    if not inc.any_firing:
        if policy.resolve_timeout.total_seconds() == 0:
            step.resolve(inc, "GRP-9")
        else:
            step.save(inc.model_copy(update={"quiet_since": step.now}))


def _on_command(step: _Step, command: IncidentCommand, position: int) -> None:
    if command.action is CommandAction.merge:
        _on_merge(step, command)
        return
    if command.action is CommandAction.split:
        _on_split(step, command, position)
        return
    inc = step.incidents.get(command.incident_id)
    if inc is None or not inc.is_open:
        return
    if command.action is CommandAction.acknowledge:
        if inc.phase is Phase.triggered:
            step.emit(
                inc.model_copy(update={"phase": Phase.acknowledged}),
                IncidentEventKind.acknowledged,
                "GRP-12",
                actor=command.actor,
                comment=command.comment,
            )
        return
    firing = sorted(fp for fp, status in inc.alerts.items() if status is AlertStatus.firing)
    inc = step.resolve(inc, "GRP-25" if firing else "GRP-13", actor=command.actor, comment=command.comment)
    for fp in firing:  # GRP-25: released; the dedup stage hears of it (`released`) and takes its next copy as news
        inc = inc.model_copy(
            update={
                "alerts": {**inc.alerts, fp: AlertStatus.resolved},
                "seen": {k: v for k, v in inc.seen.items() if k != fp},
            }
        )
        inc = step.emit(
            inc,
            IncidentEventKind.alert_resolved,
            "GRP-25",
            actor=command.actor,
            comment=f"still firing at its source when {command.actor} resolved the incident: released; "
            "if its source sends it again it fires anew",
            related=[fp],
        )


def regroup_refusal(incidents: Mapping[str, TrackedIncident], command: IncidentCommand) -> str | None:
    """Why a merge or split (GRP-30, GRP-31) changes nothing when its turn comes, or None if it applies. The API
    checked the same against the read model; the incidents may have changed between that look and this turn."""
    source = incidents.get(command.incident_id)
    if source is None or not source.is_open:
        return f"{command.incident_id} is no longer open (resolved, merged, or forgotten after its reopen window)"
    if command.action is CommandAction.merge:
        target = incidents.get(command.into or "")
        if command.into == source.id:
            return f"cannot merge {source.id} into itself"
        if target is None or not target.is_open:
            return (
                f"{command.into} is not an open incident of {command.correlation_key}: only open incidents of one "
                "correlation key merge"
            )
        return None
    moving = _chosen(source, command)
    if not moving:
        return f"none of the chosen alerts is in {source.id} any more"
    if len(moving) == len(source.alerts):
        return f"every alert of {source.id} would leave it: nothing would remain"
    if not any(source.alerts[fp] is AlertStatus.firing for fp in moving):
        return "none of the chosen alerts fires any more: the new incident would open only to resolve"
    return None


def _chosen(source: TrackedIncident, command: IncidentCommand) -> list[str]:
    """The fingerprints a split moves: those chosen that the source holds, each once, in the order given."""
    return [fp for fp in dict.fromkeys(command.alerts) if fp in source.alerts]


def _by(command: IncidentCommand) -> str:
    """The person's comment, if they gave one, as every event of a merge or split ends (the event names the actor)."""
    return f": {command.comment}" if command.comment else ""


def _alerts(n: int) -> str:
    return f"{n} alert{'' if n == 1 else 's'}"


def _moved_alerts(
    step: _Step,
    inc: TrackedIncident,
    moved: dict[str, AlertStatus],
    snapshot: Mapping[str, Alert],
    rule: str,
    command: IncidentCommand,
    origin: str,
) -> TrackedIncident:
    """One event per alert that moved into `inc`: `alert_added` if it fires, else `alert_resolved`, carrying the
    alert from the snapshot with the stage's status (by fingerprint in `related` if the snapshot lacks it)."""
    for fp, status in moved.items():
        kind = IncidentEventKind.alert_added if status is AlertStatus.firing else IncidentEventKind.alert_resolved
        alert = snapshot[fp].model_copy(update={"status": status}) if fp in snapshot else None
        inc = step.emit(
            inc,
            kind,
            rule,
            alert,
            actor=command.actor,
            comment=f"moved from {origin}{_by(command)}",
            related=[] if alert else [fp],
        )
    return inc


def _on_merge(step: _Step, command: IncidentCommand) -> None:
    """GRP-30: the source's alerts (statuses, when each was seen, expiries) move into the target, the source ends
    (`merged`) and leaves the entry; the target takes the higher severity, both incidents' services, and flapping
    or a page no longer held if the source brings them."""
    if regroup_refusal(step.incidents, command) is not None:
        return
    source, target = step.incidents[command.incident_id], step.incidents[command.into or ""]
    step.emit(
        source,
        IncidentEventKind.merged,
        "GRP-30",
        actor=command.actor,
        related=[target.id],
        comment=f"merged into {target.id}{_by(command)}",
    )
    was_current = step.current == source.id
    step.drop(source)
    if was_current:
        step.current = target.id
    moved = dict(sorted(source.alerts.items()))
    firing = sum(1 for status in moved.values() if status is AlertStatus.firing)
    target = step.emit(
        target,
        IncidentEventKind.merged_in,
        "GRP-30",
        actor=command.actor,
        related=[source.id, *moved],
        comment=f"{source.id} merged in, {_alerts(len(moved))} ({firing} firing){_by(command)}",
    )
    target = step.save(
        target.model_copy(
            update={
                "alerts": {**target.alerts, **moved},
                "seen": {**target.seen, **source.seen},
                "expires": {**target.expires, **source.expires},
                "services": sorted({*target.services, *source.services}),
                "truncated_noted": max(target.truncated_noted, source.truncated_noted),
                "quiet_since": target.quiet_since if not firing else None,
                "recent": _latest(target.recent, source.recent),
                "signatures": _latest(target.signatures, source.signatures),
                "domain": {**source.domain, **target.domain},
                "suspects": {**source.suspects, **target.suspects},
            }
        )
    )
    step.people_said(source.policy, source.services, target.services, merged=True)
    snapshot = {a.fingerprint: a for a in command.snapshot}
    target = _moved_alerts(step, target, moved, snapshot, "GRP-30", command, source.id)
    policies = step.rules.policies
    if policies.rank(source.severity) > policies.rank(target.severity):
        target = step.emit(
            target.model_copy(update={"severity": source.severity}),
            IncidentEventKind.severity_changed,
            "GRP-30",
            actor=command.actor,
        )
    root = step.root(target)
    if root != target.probable_root:
        target = step.emit(
            target.model_copy(update={"probable_root": root}),
            IncidentEventKind.root_changed,
            "GRP-30",
            actor=command.actor,
        )
    target = step.mark_flapping(target, source.flapping_until, None)
    held_until = target.page_held_until
    if (
        held_until is not None
        and held_until > step.now
        and target.phase is Phase.triggered
        and firing
        and (source.page_held_until is None or source.page_held_until <= step.now)
    ):
        step.emit(
            target.model_copy(update={"page_held_until": None}),
            IncidentEventKind.page_hold_ended,
            "GRP-30",
            actor=command.actor,
            comment=f"{source.id}, whose page was not held, merged in: the page held until "
            f"{held_until.isoformat()} goes out now",
        )


def _on_split(step: _Step, command: IncidentCommand, position: int) -> None:
    """GRP-31: the chosen alerts leave the source for a new incident, which opens (and pages) with them; the
    source narrows to the alerts left, and resolves as GRP-9 says if none of them fires."""
    if regroup_refusal(step.incidents, command) is not None:
        return
    origin = step.incidents[command.incident_id]
    moving = _chosen(origin, command)
    snapshot = {a.fingerprint: a for a in command.snapshot}
    new_id = incident_id(step.entry.correlation_key, position, step.now)
    left = {fp: status for fp, status in origin.alerts.items() if fp not in moving}
    services = origin.services
    if all(fp in snapshot for fp in left):  # else an alert joined after the person looked: keep every service
        services = sorted({s for fp in left if (s := step.service_of(snapshot[fp]))})
    source = origin.model_copy(
        update={
            "alerts": left,
            "services": services,
            "seen": {k: v for k, v in origin.seen.items() if k not in moving},
            "expires": {k: v for k, v in origin.expires.items() if k not in moving},
        }
    )
    source = step.emit(
        source,
        IncidentEventKind.alerts_split,
        "GRP-31",
        actor=command.actor,
        related=[new_id, *moving],
        comment=f"{_alerts(len(moving))} split off into {new_id}{_by(command)}",
    )
    root = step.root(source)
    if root != source.probable_root:
        source = step.emit(
            source.model_copy(update={"probable_root": root}),
            IncidentEventKind.root_changed,
            "GRP-31",
            actor=command.actor,
        )
    policies = step.rules.policies
    if all(fp in snapshot for fp in left):  # a person took alerts out: the source ranks by the firing ones left
        firing = [snapshot[fp] for fp, status in left.items() if status is AlertStatus.firing]
        severity = max(
            (a.labels.get(policies.severity_label) for a in firing), key=policies.rank, default=source.severity
        )
        if firing and severity != source.severity:
            source = step.emit(
                source.model_copy(update={"severity": severity}),
                IncidentEventKind.severity_changed,
                "GRP-31",
                actor=command.actor,
                comment=f"{severity or 'no severity'}: the most severe firing alert left after the split",
            )
    step.people_said(
        origin.policy,
        {step.service_of(snapshot[fp]) or "" for fp in moving if fp in snapshot},
        source.services,
        merged=False,
    )
    if not source.any_firing and source.quiet_since is None:
        if step.rules.policies.get(source.policy).resolve_timeout.total_seconds() == 0:
            step.resolve(source, "GRP-9")
        else:
            step.save(source.model_copy(update={"quiet_since": step.now}))
    _open_split(step, origin, new_id, moving, snapshot, command)


def _latest(a: Mapping[str, datetime], b: Mapping[str, datetime]) -> dict[str, datetime]:
    """Two incidents' last-new-firing maps as one: the later time per key."""
    return {**a, **{k: at for k, at in b.items() if k not in a or at > a[k]}}


def _open_split(
    step: _Step,
    origin: TrackedIncident,
    new_id: str,
    moving: list[str],
    snapshot: Mapping[str, Alert],
    command: IncidentCommand,
) -> None:
    """The incident a split opens, from `origin` (the source before the split): titled, ranked and placed by its
    own alerts' labels; it opens with the first firing one, as an incident opens with its first alert, and lists
    every moved alert after."""
    policies = step.rules.policies
    moved = {fp: origin.alerts[fp] for fp in moving}
    alerts = [snapshot[fp].model_copy(update={"status": moved[fp]}) for fp in moving if fp in snapshot]
    first = next((a for a in alerts if a.status is AlertStatus.firing), None)
    title = _title(policies.get(origin.policy), step.entry, first) if first is not None else origin.title
    new = TrackedIncident(
        id=new_id,
        policy=origin.policy,
        phase=Phase.triggered,
        created_at=step.now,
        opened_at=step.now,
        title=title if title != origin.title else f"{title} (split from {origin.id})",
        severity=max((a.labels.get(policies.severity_label) for a in alerts), key=policies.rank, default=None)
        or origin.severity,
        services=sorted({s for a in alerts if (s := step.service_of(a))}),
        alerts=moved,
        seen={k: v for k, v in origin.seen.items() if k in moved},
        expires={k: v for k, v in origin.expires.items() if k in moved},
        domain=origin.domain,
        suspects=origin.suspects,
    )
    services = {step.service_of(a) or "" for a in alerts}
    new = new.model_copy(
        update={
            "recent": {s: at for s, at in origin.recent.items() if s in services},
            "signatures": {sig: at for sig, at in origin.signatures.items() if sig.removeprefix("@") in services},
        }
    )
    new = new.model_copy(update={"probable_root": step.root(new)})
    new = step.emit(
        new,
        IncidentEventKind.opened,
        "GRP-31",
        first,
        actor=command.actor,
        related=[origin.id],
        comment=f"split from {origin.id}{_by(command)}",
    )
    _moved_alerts(step, new, moved, snapshot, "GRP-31", command, origin.id)


def released(events: list[IncidentEvent]) -> list[tuple[str, datetime, str]]:
    """(fingerprint, when, incident id) of each alert a person's resolve released (GRP-25): the dedup stage is
    told (`dedup.release`), so the alert's next copy from its source is news rather than a duplicate."""
    return [
        (fp, e.at, e.incident_id)
        for e in events
        if e.rule == "GRP-25" and e.kind is IncidentEventKind.alert_resolved
        for fp in e.related
    ]


def _on_tick(step: _Step) -> None:
    for inc in list(step.incidents.values()):
        policy = step.rules.policies.get(inc.policy)
        if inc.phase is Phase.pending:
            if not reaches_minimum(inc.pending, policy, step.rules.service_label):
                if step.now >= inc.created_at + policy.min_within:
                    step.drop(inc)  # GRP-20
            elif step.now >= inc.created_at + policy.group_wait:
                step.open(inc, inc.pending, "GRP-3", inc.flapping_until)
            continue
        if inc.is_open and inc.flapping_until is not None and step.now >= inc.flapping_until:
            inc = step.emit(inc.model_copy(update={"flapping_until": None}), IncidentEventKind.flapping_ended, "GRP-15")
        if inc.is_open and policy.quiet_resolve is not None and inc.seen:
            inc = _quiet_resolve(step, inc, policy)
        if inc.is_open and inc.expires:
            inc = _expire(step, inc)
        if inc.is_open and inc.quiet_since is not None and step.now >= inc.quiet_since + policy.resolve_timeout:
            step.resolve(inc, "GRP-9")
        elif inc.phase is Phase.resolved and inc.resolved_at is not None and step.now >= reopen_until(inc, policy):
            step.drop(inc)  # GRP-11


def group(
    entry: GroupState | None,
    item: AlertEvent | IncidentCommand | Tick,
    position: int,
    now: datetime,
    rules: Rules,
    partition: int = 0,
) -> tuple[GroupState | None, list[IncidentEvent]]:
    """Apply one input at `position` (its offset in the key's partition) at time `now`.

    Returns the new entry and the events to emit. An entry is kept even with no incidents left: its
    position is what makes a redelivered record a no-op.
    """
    if entry is not None and position <= entry.position:
        return entry, replayed(entry.emitted, position)
    if entry is None:
        if not isinstance(item, AlertEvent):
            return None, []
        entry = GroupState(correlation_key=item.correlation_key, group_labels=item.group_labels, position=-1)
    step = _Step(entry, rules, now)
    if isinstance(item, AlertEvent):
        fingerprint = item.alert.fingerprint
        if not first_time(entry.applied, fingerprint, item.source_position):
            return step.finish(position, partition)  # GRP-00
        if item.refresh:
            _on_refresh(step, item, position)
        elif item.status is AlertStatus.firing:
            _on_firing(step, item, position)
            if not item.suppressed_by and (policy := rules.policies.get(item.policy)).learn:
                step.learn_firing(policy, item.alert)  # after the join: evidence comes from the past only
        else:
            _on_resolved(step, item)
        step.applied = note_applied(entry.applied, fingerprint, item.source_position, now)
    elif isinstance(item, IncidentCommand):
        _on_command(step, item, position)
    else:
        _ticks(step, entry.last_at)
    return step.finish(position, partition)


MAX_TICK_STEPS = 64  # a guard on the transitions one tick takes per key (each changes the entry; a key has few timers)


def _ticks(step: _Step, last_input: datetime | None) -> None:
    """Every transition due by the tick's time, each at the moment it fell due (not before `last_input`, the
    entry's last input, so events stay in time order). Stops when nothing more is due or a step changes nothing."""
    until = step.now
    for _ in range(MAX_TICK_STEPS):
        due = due_of(step.incidents.values(), step.rules)
        if due is None or due > until:
            break
        step.now = max(due, last_input) if last_input is not None else due
        before = dict(step.incidents)
        _on_tick(step)
        if step.incidents == before:
            break
    step.now = until


def change_scopes(entry: GroupState, events: list[IncidentEvent], rules: Rules) -> list[tuple[str, set[str]]]:
    """For each incident these events opened: its id and the services whose changes could be suspects
    (its own and everything they depend on). The caller fetches their recent changes for `attach_suspects`."""
    scopes = []
    for event in events:
        tracked = entry.incidents.get(event.incident_id)
        if event.kind is IncidentEventKind.opened and tracked is not None:
            scopes.append((tracked.id, rules.topology.with_dependencies(tracked.services)))
    return scopes


def attach_suspects(
    entry: GroupState, incident: str, recent: list[ChangeEvent], now: datetime, rules: Rules
) -> tuple[GroupState, list[IncidentEvent]]:
    """Record the suspects among `recent` changes (GRP-18) on a just-opened incident.

    The events join the emission of the input that opened it, so a redelivered opening re-emits them too.
    """
    tracked = entry.incidents.get(incident)
    changes = suspects(recent, tracked.services, rules.topology, now, rules.policies.change_window) if tracked else []
    if tracked is None or not changes:
        return entry, []
    step = _Step(entry, rules, now)
    tracked = step.save(
        tracked.model_copy(update={"suspects": {**tracked.suspects, **{c.id: (c.service, c.at) for c in changes}}})
    )
    for change in changes:
        tracked = step.emit(
            tracked, IncidentEventKind.change_suspected, "GRP-18", comment=describe(change), related=[change.id]
        )
    return step.finish(entry.position, entry.partition)
