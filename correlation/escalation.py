"""Escalation as a pure state machine: which policy an incident pages, which level is due, and who that is.

`apply(current, event, incident, now, paging)` says what one incident event does to the incident's escalation,
`tick(state, incident, now, muted, paging)` what its due level does; both return the new state and the outputs
to act on (Started, Hastened, Stopped, Notice, Update, Held, Page, and decisions for the log). The live pager
(actions/pager.py) leases, reads, calls them, writes and delivers; the simulator's pager
(correlation/virtual_pager.py, for `check` and `replay`) calls the same two on a virtual clock.

Rules (ids in the decision log's words and in the tests):
- ESC-1 An incident that opens or reopens (not while it flaps), or stops flapping without having paged,
  starts an escalation by its route, level 1 due at once. A redelivered event starts nothing again.
- ESC-2 An incident opened in a transient pause (GRP-24) starts with level 1 due when the pause ends; if it
  resolves before then, nobody is paged.
- ESC-3 A change that re-routes a triggered incident (its severity rose, a new probable root, flapping
  ended, or a joining alert matches an earlier route) to an escalation policy that has not paged it yet
  (`rerouted`) starts that escalation; the new one replaces the old.
- ESC-4 An alert that does not resolve by itself joining an incident in its pause makes level 1 due now.
- ESC-5 Acknowledging, resolving or merging the incident into another stops its escalation at once, and
  whoever was paged gets a notice; a level that falls due on an incident no longer triggered stops it too.
  An incident split off another opens, so it escalates on its own.
- ESC-6 Any other notifying change of a paged incident is one coalesced update to those paged.
- ESC-7 A level due while every firing alert is silenced or inhibited is held, not skipped: it is looked at
  again every MUTE_RECHECK_SECONDS and pages if the incident still fires when the mute ends.
- ESC-8 Paging a level makes the next one due `delay` later, counted from when the level was due (so a
  worker that was down catches up on schedule rather than shifting every later level), or from the page
  if a mute held it. After the last level the policy starts again from level 1 `repeat` times, then the
  escalation is exhausted.
- ESC-9 An incident no route, owner team or default sends to an escalation policy pages nobody; an escalation
  whose policy left the notifications file stops at its next level (`tick`), and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from correlation.conditions import conditions_hold, services_of, team_of
from correlation.oncall import on_call
from correlation.topology import Topology
from schemas import Alert, AlertStatus, Incident, IncidentAlert, IncidentEvent, IncidentEventKind, IncidentStatus
from schemas.decision import Decision, DecisionKind
from schemas.notification import NotificationsFile


class EscalationStatus(StrEnum):
    active = "active"
    stopped = "stopped"  # acknowledged or resolved
    exhausted = "exhausted"  # every level paged, every repeat done


MUTE_RECHECK_SECONDS = 10.0
POLICY_GONE = "policy_removed"  # why an escalation stopped whose escalation policy left the notifications file  # how often a muted escalation level looks again whether the mute ended


class Escalation(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    incident_id: str
    policy: str
    generation: str  # the event that started it: a reopened incident escalates afresh
    status: EscalationStatus = EscalationStatus.active
    level: int = 0  # index of the next level to page
    round: int = 0  # how many times the policy started over
    due_at: AwareDatetime
    started_at: AwareDatetime
    stopped_by: str | None = None
    held_at: AwareDatetime | None = None  # when the due level was first held by a mute (silence, inhibition)
    route: int | None = Field(
        None, exclude_if=lambda v: v is None
    )  # the route that chose the policy (None: team, default)
    # Escalation policies that paged this incident before a re-route. Left out while empty, and an empty JSON
    # object read as empty: the pager's Lua scripts re-encode the state, and cjson writes an empty list as {}.
    earlier: Annotated[list[str], BeforeValidator(lambda v: [] if v == {} else v)] = Field(
        default_factory=list, exclude_if=lambda v: not v
    )


class Reaction(StrEnum):
    """What an incident event means for paging."""

    start = "start"  # page level 1 now (a new generation replaces an earlier escalation)
    start_if_never_paged = "start_if_never_paged"  # flapping ended: page only if the hold-down kept it from paging
    hasten = "hasten"  # the transient pause was cut short: a level 1 still held is due now
    stop = "stop"  # acknowledged, resolved or merged into another: stop at once, tell everyone paged
    update = "update"  # a change worth one coalesced update to those paged
    none = "none"


_UPDATES = {
    IncidentEventKind.alert_added,
    IncidentEventKind.alert_resolved,
    IncidentEventKind.severity_changed,
    IncidentEventKind.root_changed,
    IncidentEventKind.change_suspected,
    IncidentEventKind.problem_detected,
    IncidentEventKind.merged_in,
    IncidentEventKind.alerts_split,
}
_STOPS = (IncidentEventKind.acknowledged, IncidentEventKind.resolved, IncidentEventKind.merged)


def reaction(event: IncidentEvent, incident: Incident) -> Reaction:
    """Pure: the paging consequence of one incident event, given the incident after it."""
    if event.kind in (IncidentEventKind.opened, IncidentEventKind.reopened):
        return Reaction.start if event.notify else Reaction.none  # while flapping, pages hold
    if event.kind is IncidentEventKind.flapping_ended:
        return Reaction.start_if_never_paged if incident.status is IncidentStatus.triggered else Reaction.none
    if event.kind in _STOPS:
        return Reaction.stop
    if event.kind is IncidentEventKind.page_hold_ended:
        return Reaction.hasten if incident.status is IncidentStatus.triggered else Reaction.none
    if event.kind in _UPDATES and event.notify and incident.is_open:
        return Reaction.update
    return Reaction.none


class Recipient(BaseModel):
    """One delivery of a page: a channel, the address on it, and the person it reaches (if any)."""

    model_config = ConfigDict(frozen=True)

    channel: str
    address: str = ""
    user: str | None = None


@dataclass(frozen=True)
class Route:
    """The outcome of routing: the escalation policy (None: nobody is paged), why, and the index of the route
    that decided (None: the owner team's policy, the default, or nothing matched)."""

    policy: str | None
    why: str
    index: int | None = None


def route(
    incident: Incident,
    severity: str | None,
    config: NotificationsFile,
    topology: Topology,
    service_label: str,
    extra: Alert | None = None,
) -> str | None:
    """The escalation policy for an incident: the first matching route; else the policy named like the owner
    team of its services; else the default policy; else None (it pages nobody). `extra` is the alert of the
    event that opened it, which the read model may not list yet."""
    return choose_route(incident, severity, config, topology, service_label, extra).policy


def routed(
    incident: Incident,
    severity: str | None,
    config: NotificationsFile,
    topology: Topology,
    service_label: str,
    extra: Alert | None = None,
) -> tuple[str | None, str]:
    """`route`, with why, for the decision log."""
    chosen = choose_route(incident, severity, config, topology, service_label, extra)
    return chosen.policy, chosen.why


def choose_route(
    incident: Incident,
    severity: str | None,
    config: NotificationsFile,
    topology: Topology,
    service_label: str,
    extra: Alert | None = None,
    before: int | None = None,
) -> Route:
    """`route` as a `Route`. With `before`, only routes before that index are tried (and no fallback): a
    joining alert can only re-route to a route earlier than the one that already matched."""
    candidates = config.routes if before is None else config.routes[:before]
    for index, candidate in enumerate(candidates):
        if conditions_hold(candidate, incident, severity, topology, service_label, extra):
            conditions = [
                *candidate.matchers,
                *(f"severity in {candidate.severity}" for _ in candidate.severity[:1]),
                *(f"service in {candidate.service}" for _ in candidate.service[:1]),
                *(f"team in {candidate.team}" for _ in candidate.team[:1]),
            ]
            where = f"route #{index + 1} ({', '.join(conditions) or 'matches everything'})"
            return Route(
                candidate.policy,
                f"{where} sends it to escalation policy `{candidate.policy}`"
                if candidate.policy
                else f"{where} says it pages nobody",
                index,
            )
    if before is not None:
        return Route(None, "no earlier route matches")
    team = team_of(services_of(incident, service_label, extra), incident.probable_root, topology)
    if team and team in config.escalation_policies:
        return Route(team, f"no route matches; its services' owner team `{team}` has an escalation policy of that name")
    if config.default_policy:
        return Route(
            config.default_policy,
            f"no route or owner team matches; the default escalation policy `{config.default_policy}`",
        )
    return Route(None, "no escalation route matches the incident and there is no default escalation policy")


# What may change an incident's route after it opened: routed again in full, or (a joining alert) first alone.
REROUTE_KINDS = frozenset(
    {
        IncidentEventKind.severity_changed,
        IncidentEventKind.root_changed,
        IncidentEventKind.flapping_ended,
        IncidentEventKind.alert_added,
    }
)


def may_reroute(event: IncidentEvent, incident: Incident) -> bool:
    """Whether `rerouted` can find anything for this event: a notifying change of a triggered incident. Cheap, so
    the live pager reads Redis only when it holds."""
    return event.kind in REROUTE_KINDS and event.notify and incident.status is IncidentStatus.triggered


def rerouted(
    event: IncidentEvent,
    incident: Incident,
    current: Escalation | None,
    config: NotificationsFile,
    topology: Topology,
    service_label: str,
) -> Route | None:
    """The route a triggered incident takes after `event` if that pages by an escalation policy that has not
    paged it (nor is paging it now); else None. A severity rise, a new probable root (whose owner team may
    have an escalation policy of its own) or the end of flapping (which held changes back) routes the whole
    incident again; a joining
    alert is first tried alone against the routes before the current one (O(routes), not O(alerts)), and the
    whole incident is routed again only if one of those matches it."""
    if not may_reroute(event, incident):
        return None
    severity = event.severity or incident.severity
    if event.kind in (
        IncidentEventKind.severity_changed,
        IncidentEventKind.root_changed,
        IncidentEventKind.flapping_ended,
    ):  # changes held back while it flapped count now
        chosen = choose_route(incident, severity, config, topology, service_label, event.alert)
    elif event.kind is IncidentEventKind.alert_added and event.alert is not None:
        before = current.route if current is not None else None
        if current is not None and before is None:
            before = len(config.routes)  # chosen by the team or default fallback: any route is earlier
        if before is not None and not config.routes[:before]:
            return None  # no route comes earlier than the one that matched
        alone = incident.model_copy(update={"alerts": {}})
        if choose_route(alone, severity, config, topology, service_label, event.alert, before).policy is None:
            return None
        chosen = choose_route(incident, severity, config, topology, service_label, event.alert)
    else:
        return None
    if chosen.policy is None or chosen.policy not in config.escalation_policies:
        return None
    if current is not None and (chosen.policy == current.policy or chosen.policy in current.earlier):
        return None
    return chosen


def firing_alerts(incident: Incident) -> list[IncidentAlert]:
    return [a for a in incident.alerts.values() if a.status is AlertStatus.firing]


def muted_by(suppressions: list[str | None]) -> str | None:
    """Why an incident's pages are muted, given what suppresses each of its firing alerts (in order, and
    possibly cut short at the first one nothing suppresses): every one is silenced or inhibited. None if
    one is not, or if none fires. Muting holds pages and updates only; acknowledge and resolve notices
    still reach whoever was paged."""
    if not suppressions or any(s is None for s in suppressions):
        return None
    return ", ".join(sorted({s for s in suppressions if s is not None}))


# Why a page waits or never goes out, in the decision log's words: the live pager and the virtual one
# (check, replay) say the same, so their stories compare.
def transient_hold_reason(held_until: datetime, incident: Incident) -> str:
    return (
        f"transient pause: level 1 waits until {held_until.isoformat()} and pages only if the incident still "
        f"fires then; {incident.page_hold_reason or ''}"
    ).rstrip("; ")


def resolved_in_pause_reason(incident: Incident) -> str:
    held = incident.page_held_until.isoformat() if incident.page_held_until else "?"
    return f"resolved within its transient pause (page held until {held}): nobody was paged"


def mute_hold_reason(level: int, reason: str) -> str:
    return (
        f"level {level} held: every firing alert of the incident is muted ({reason}); it pages if the incident "
        "still fires when that ends"
    )


def start(
    incident_id: str,
    policy: str,
    generation: str,
    now: datetime,
    route: int | None = None,
    replacing: Escalation | None = None,
) -> Escalation:
    """A new escalation, level 1 due `now`; `replacing` is the one a re-route ends (its policies are remembered,
    so the incident is never re-routed back to a policy that already paged it)."""
    earlier = [*replacing.earlier, replacing.policy] if replacing is not None else []
    return Escalation(
        incident_id=incident_id,
        policy=policy,
        generation=generation,
        due_at=now,
        started_at=now,
        route=route,
        earlier=earlier,
    )


def reroute_reason(event: IncidentEvent, chosen: Route, current: Escalation | None) -> str:
    """Why a re-route started a new escalation, for the decision log and `explain`."""
    what = {
        IncidentEventKind.severity_changed: f"severity rose to {event.severity}",
        IncidentEventKind.root_changed: f"the probable root is now {event.probable_root}",
        IncidentEventKind.flapping_ended: "it stopped flapping",
    }.get(event.kind, "an alert joined")
    if current is None:
        was = "; no escalation policy had paged it"
    elif current.status is EscalationStatus.active:
        was = f"; it was escalating by `{current.policy}`, which stops"
    else:
        was = f"; `{current.policy}` paged it before ({current.status.value})"
    return f"re-routed ({what}): {chosen.why}{was}"


def hastened(state: Escalation, now: datetime) -> Escalation | None:
    """The escalation with level 1 due `now`, if it is still held by a transient pause; else None (level 1
    already paged or due, or the escalation stopped). Later levels count their delays from `now`."""
    if state.status is not EscalationStatus.active or state.level or state.round or state.due_at <= now:
        return None
    return state.model_copy(update={"due_at": now, "started_at": now})


def after_paging(state: Escalation, config: NotificationsFile, paged_at: datetime | None = None) -> Escalation:
    """The state once the due level has been paged: the next level (or round) due after this level's delay,
    counted from when the level was due, or from `paged_at` if a mute held it (the next level then keeps
    its full delay after the page that finally went out)."""
    policy = config.escalation_policies[state.policy]
    delay = policy.levels[state.level].delay
    if state.held_at is not None and paged_at is not None:
        state = state.model_copy(update={"due_at": paged_at, "held_at": None})
    level, round_ = state.level + 1, state.round
    if level == len(policy.levels):
        if round_ >= policy.repeat:
            return state.model_copy(update={"status": EscalationStatus.exhausted, "level": level})
        level, round_ = 0, round_ + 1
    return state.model_copy(update={"level": level, "round": round_, "due_at": state.due_at + delay})


def recipients(state: Escalation, config: NotificationsFile, at: datetime) -> list[Recipient]:
    """Who the due level pages at `at`: users' contacts, whoever is on call for schedules, and channels."""
    level = config.escalation_policies[state.policy].levels[state.level]
    found: list[Recipient] = []
    for target in level.targets:
        if target.channel is not None:
            found.append(Recipient(channel=target.channel))
            continue
        user = target.user if target.user is not None else on_call(config.schedules[target.schedule or ""], at).user
        found += [Recipient(channel=c.channel, address=c.address, user=user) for c in config.users[user].contacts]
    return list(dict.fromkeys(found))


# -- the core: what an incident event and a due level do to an escalation ------------------------------------
# The live pager (actions/pager.py) and the simulator's (correlation/virtual_pager.py: `check`, `replay`) both call
# `apply` and `tick` and act on what they return; neither decides anything about paging on its own.


@dataclass(frozen=True)
class Paging:
    """What paging decides with: the notifications file, the service catalog, and the label naming a service."""

    config: NotificationsFile
    topology: Topology
    service_label: str


@dataclass(frozen=True)
class Started:
    """Store `state` as the incident's escalation, its level 1 due at `state.due_at` (ESC-1, ESC-2, ESC-3).
    `only_if_absent`: only if the incident has none (flapping ended); else it replaces any escalation of another
    generation. `outcome` is the `firebreak_escalations_total` label: `started` or `rerouted`."""

    state: Escalation
    only_if_absent: bool
    outcome: str


@dataclass(frozen=True)
class Unrouted:
    """No route, owner team or default sends the incident to an escalation policy: nobody is paged (ESC-9)."""

    incident_id: str
    why: str


@dataclass(frozen=True)
class Hastened:
    """Level 1, held by a transient pause, is due now: store `state` (ESC-4)."""

    state: Escalation


@dataclass(frozen=True)
class Stopped:
    """The escalation stops at once (ESC-5); `by` is `<event kind>:<actor>` or the incident's status."""

    incident_id: str
    by: str


@dataclass(frozen=True)
class HeldOff:
    """The incident resolved within its transient pause: the page it held never went out (ESC-2)."""

    incident_id: str


@dataclass(frozen=True)
class Notice:
    """Tell everyone the incident paged that it was acknowledged or resolved (a merged incident: resolved)."""

    incident_id: str
    kind: IncidentEventKind
    event_id: str
    actor: str | None
    at: datetime


@dataclass(frozen=True)
class Update:
    """A change worth one coalesced update to everyone the incident paged (ESC-6)."""

    incident_id: str


@dataclass(frozen=True)
class Held:
    """The due level is held by a mute (ESC-7): store `state`; it is looked at again at `state.due_at`."""

    state: Escalation
    first: bool  # the hold begins now (logged once); else it goes on


@dataclass(frozen=True)
class Page:
    """Page `recipients` for `level` (1-based) of the escalation `state` (ESC-8), then store `following`."""

    state: Escalation
    level: int
    recipients: tuple[Recipient, ...]
    at: datetime
    caused_at: datetime  # what the page answers: the escalation's start for level 1 of round 1, else when due
    following: Escalation


Output = Started | Unrouted | Hastened | Stopped | HeldOff | Notice | Update | Held | Page | Decision


def _decision(kind: DecisionKind, incident: Incident, at: datetime, reason: str, **detail: str) -> Decision:
    return Decision(
        at=at, kind=kind, incident_id=incident.id, policy=incident.policy, rule="pager", reason=reason, detail=detail
    )


def apply(
    current: Escalation | None, event: IncidentEvent, incident: Incident, now: datetime, paging: Paging
) -> tuple[Escalation | None, list[Output]]:
    """Pure: the escalation after one incident event (`incident` as projected after it) and what to do about it.

    `current` is the incident's escalation before the event (None: it has none), `now` the caller's clock (the
    wall clock live, the event's time on the simulator's clock): a transient pause that ended by `now` holds
    nothing. The outputs come in the order to act on them; decisions are among them."""
    state, out = current, list[Output]()
    chosen = rerouted(event, incident, current, paging.config, paging.topology, paging.service_label)
    if chosen is not None:  # ESC-3
        state = start(incident.id, chosen.policy or "", event.event_id, event.at, chosen.index, current)
        out += [
            Started(state, False, "rerouted"),
            _decision(
                DecisionKind.escalation_started,
                incident,
                event.at,
                reroute_reason(event, chosen, current),
                escalation_policy=chosen.policy or "",
            ),
        ]
    what = reaction(event, incident)
    if what in (Reaction.start, Reaction.start_if_never_paged):
        if state is not None and (state.generation == event.event_id or what is Reaction.start_if_never_paged):
            return state, out  # redelivered, or it paged (or pages) already
        hold = event.page_held_until if event.kind is IncidentEventKind.opened else None
        begun, started = begin(
            incident,
            event.severity or incident.severity,
            event.alert,
            event.event_id,
            event.at,
            paging,
            only_if_absent=what is Reaction.start_if_never_paged,
            hold=hold if hold is not None and hold > now else None,
        )
        return begun or state, [*out, *started]
    elif what is Reaction.hasten and state is not None:
        sooner = hastened(state, now)
        if sooner is not None:
            state = sooner
            out.append(Hastened(sooner))
    elif what is Reaction.stop:  # ESC-5
        never_paged = state is None or (state.level, state.round) == (0, 0)
        if state is not None:
            state = state.model_copy(
                update={"status": EscalationStatus.stopped, "stopped_by": f"{event.kind.value}:{event.actor}"}
            )
        out += [
            Stopped(incident.id, f"{event.kind.value}:{event.actor}"),
            Notice(incident.id, event.kind, event.event_id, event.actor, event.at),
        ]
        if (
            never_paged
            and event.kind is IncidentEventKind.resolved
            and incident.page_held_until is not None
            and event.at < incident.page_held_until
        ):
            out += [
                HeldOff(incident.id),
                _decision(DecisionKind.not_paged, incident, event.at, resolved_in_pause_reason(incident)),
            ]
    elif what is Reaction.update:  # ESC-6
        out.append(Update(incident.id))
    return state, out


def begin(
    incident: Incident,
    severity: str | None,
    alert: Alert | None,
    generation: str,
    at: datetime,
    paging: Paging,
    only_if_absent: bool = False,
    hold: datetime | None = None,
) -> tuple[Escalation | None, list[Output]]:
    """Pure: an escalation by the incident's route, started at `at` with level 1 due then, or at `hold` (a
    transient pause, ESC-2); None and `Unrouted` if no escalation policy takes it (ESC-9). `alert` is the alert
    of the event that opened it, which the incident may not list yet. The live pager also calls it to start
    again, from its opening, the escalation of an open incident whose escalation Redis lost."""
    chosen = choose_route(incident, severity, paging.config, paging.topology, paging.service_label, alert)
    if chosen.policy is None or chosen.policy not in paging.config.escalation_policies:
        return None, [Unrouted(incident.id, chosen.why), _decision(DecisionKind.not_paged, incident, at, chosen.why)]
    state = start(incident.id, chosen.policy, generation, at, chosen.index)  # ESC-1
    if hold is not None:
        state = state.model_copy(update={"due_at": hold, "started_at": hold})
    out: list[Output] = [
        Started(state, only_if_absent, "started"),
        _decision(DecisionKind.escalation_started, incident, at, chosen.why, escalation_policy=chosen.policy),
    ]
    if hold is not None:
        out.append(_decision(DecisionKind.page_held, incident, at, transient_hold_reason(hold, incident), level="1"))
    return state, out


def tick(
    state: Escalation, incident: Incident, now: datetime, muted: str | None, paging: Paging
) -> tuple[Escalation, list[Output]]:
    """Pure: what the due level of an active escalation does at `now` (the caller's clock: when it fell due on
    the simulator's). `muted` is why every firing alert is muted (`muted_by`), or None.

    Not triggered any more: it stops (ESC-5). Muted: the level is held and looked at again
    MUTE_RECHECK_SECONDS later (ESC-7). Else it pages the level's recipients at `now` and moves on (ESC-8)."""
    if incident.status is not IncidentStatus.triggered:
        return (
            state.model_copy(update={"status": EscalationStatus.stopped, "stopped_by": incident.status.value}),
            [Stopped(incident.id, incident.status.value)],
        )
    if state.policy not in paging.config.escalation_policies:  # the notifications file changed under it
        why = (
            f"escalation policy `{state.policy}` is no longer in the notifications file: no further level pages; "
            "restore the policy, or acknowledge the incident"
        )
        return (
            state.model_copy(update={"status": EscalationStatus.stopped, "stopped_by": POLICY_GONE}),
            [Stopped(incident.id, POLICY_GONE), _decision(DecisionKind.not_paged, incident, now, why)],
        )
    level = state.level + 1
    if muted is not None:
        held = state.model_copy(
            update={"due_at": now + timedelta(seconds=MUTE_RECHECK_SECONDS), "held_at": state.held_at or now}
        )
        out: list[Output] = [Held(held, state.held_at is None)]
        if state.held_at is None:
            out.append(
                _decision(DecisionKind.page_held, incident, now, mute_hold_reason(level, muted), level=str(level))
            )
        return held, out
    who = tuple(recipients(state, paging.config, now))
    caused = state.started_at if (state.level, state.round) == (0, 0) else state.due_at
    following = after_paging(state, paging.config, now)
    return following, [Page(state, level, who, now, caused, following)]
