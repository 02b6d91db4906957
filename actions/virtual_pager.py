"""The pager on a virtual clock: what `actions/pager.py` does with incident events and due levels, without
Redis or deliveries. `firebreak check` (fixtures) and `firebreak replay --notifications` (a recorded stream)
run it, so both page exactly as the pure parts the live pager uses decide: routing (`routed`), the
transient pause and its early end (`hastened`), stop on acknowledge and resolve, mutes (`muted_by`, through
the caller's suppression lookup), levels, rounds and on-call schedules (`after_paging`, `recipients`).

What it leaves out is what needs the outside world: delivery failures and retries, dedup keys across
workers, and the update and notice messages (acknowledge and resolve notices always go out live).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from actions.escalation import (
    MUTE_RECHECK_SECONDS,
    Escalation,
    EscalationStatus,
    Reaction,
    after_paging,
    firing_alerts,
    hastened,
    muted_by,
    mute_hold_reason,
    reaction,
    recipients,
    choose_route,
    reroute_reason,
    rerouted,
    resolved_in_pause_reason,
    start,
    transient_hold_reason,
)
from correlation.topology import Topology
from schemas import Incident, IncidentAlert, IncidentEvent, IncidentEventKind, IncidentStatus
from schemas.decision import Decision, DecisionKind
from schemas.notification import NotificationsFile

# What suppresses one alert at an instant (`silence:<id>`, `inhibit:<rule>`, or None).
Suppression = Callable[[IncidentAlert, datetime], str | None]


@dataclass(frozen=True)
class VirtualPage:
    incident_id: str
    level: int
    policy: str
    to: list[str]  # the people paged, and the channels paged as such
    channels: list[str]
    at: datetime


@dataclass
class VirtualPager:
    config: NotificationsFile
    topology: Topology
    service_label: str
    suppression: Suppression
    decisions: list[Decision] | None = None  # the decision log, kept only when a list is given
    # Replay's model of the people: each incident acknowledged this long after its first page (None: never).
    ack_after: timedelta | None = None
    escalations: dict[str, Escalation] = field(default_factory=dict)
    pages: list[VirtualPage] = field(default_factory=list)
    first_paged: dict[str, datetime] = field(default_factory=dict)

    def observe(self, event: IncidentEvent, incident: Incident) -> None:
        """The paging consequence of one incident event (the incident as projected after it)."""
        current = self.escalations.get(incident.id)
        chosen = rerouted(event, incident, current, self.config, self.topology, self.service_label)
        if chosen is not None:  # as the live pager's `_reroute`
            self.escalations[incident.id] = start(incident.id, chosen.policy or "", event.event_id, event.at,
                                                  chosen.index, current)
            self._decide(DecisionKind.escalation_started, incident, event.at, reroute_reason(event, chosen, current),
                         escalation_policy=chosen.policy or "")
        what = reaction(event, incident)
        if what in (Reaction.start, Reaction.start_if_never_paged):
            if what is Reaction.start_if_never_paged and event.incident_id in self.escalations:
                return
            chosen = choose_route(incident, event.severity or incident.severity, self.config, self.topology,
                                  self.service_label, event.alert)
            policy, why = chosen.policy, chosen.why
            if policy is None or policy not in self.config.escalation_policies:
                self._decide(DecisionKind.not_paged, incident, event.at, why)
                return
            state = start(incident.id, policy, event.event_id, event.at, chosen.index)
            self.first_paged.pop(incident.id, None)  # reopened: paging starts afresh, and so would the people
            hold = event.page_held_until if event.kind is IncidentEventKind.opened else None
            if hold is not None and hold > event.at:
                state = state.model_copy(update={"due_at": hold, "started_at": hold})
            self.escalations[incident.id] = state
            self._decide(DecisionKind.escalation_started, incident, event.at, why, escalation_policy=policy)
            if hold is not None and hold > event.at:
                self._decide(DecisionKind.page_held, incident, event.at, transient_hold_reason(hold, incident), level="1")
        elif what is Reaction.hasten and incident.id in self.escalations:
            self.escalations[incident.id] = hastened(self.escalations[incident.id], event.at) or self.escalations[incident.id]
        elif what is Reaction.stop and incident.id in self.escalations:
            state = self.escalations[incident.id]
            if (event.kind is IncidentEventKind.resolved and incident.page_held_until is not None
                    and event.at < incident.page_held_until and state.level == 0 and state.round == 0):
                self._decide(DecisionKind.not_paged, incident, event.at, resolved_in_pause_reason(incident))
            self.escalations[incident.id] = state.model_copy(update={"status": EscalationStatus.stopped})

    def next_due(self) -> datetime | None:
        return min((s.due_at for s in self.escalations.values() if s.status is EscalationStatus.active), default=None)

    def escalate(self, now: datetime, incidents: Mapping[str, Incident]) -> list[tuple[Incident, int]]:
        """Page every level due by `now`, each at the time it was due; returns (incident, level) paged."""
        paged: list[tuple[Incident, int]] = []
        for incident_id, state in list(self.escalations.items()):
            while state.status is EscalationStatus.active and state.due_at <= now:
                incident = incidents[incident_id]
                if incident.status is not IncidentStatus.triggered:
                    state = state.model_copy(update={"status": EscalationStatus.stopped})
                    break
                acked = self.first_paged.get(incident_id)
                if acked is not None and self.ack_after is not None and state.due_at >= acked + self.ack_after:
                    self._decide(DecisionKind.not_paged, incident, acked + self.ack_after,
                                 f"acknowledged (assumed: {self.ack_after} after the first page): level "
                                 f"{state.level + 1} and later do not page")
                    state = state.model_copy(update={"status": EscalationStatus.stopped})
                    break
                reason = muted_by([self.suppression(a, state.due_at) for a in firing_alerts(incident)])
                if reason is not None:  # held as the pager holds it, and looked at again as often
                    if state.held_at is None:
                        self._decide(DecisionKind.page_held, incident, state.due_at,
                                     mute_hold_reason(state.level + 1, reason), level=str(state.level + 1))
                    state = state.model_copy(update={"due_at": state.due_at + timedelta(seconds=MUTE_RECHECK_SECONDS),
                                                     "held_at": state.held_at or state.due_at})
                    continue
                level = state.level + 1
                who = recipients(state, self.config, state.due_at)
                self.pages.append(VirtualPage(incident_id, level, state.policy, sorted({r.user or r.channel for r in who}),
                                              sorted({r.channel for r in who}), state.due_at))
                for r in who:
                    self._decide(DecisionKind.paged, incident, state.due_at,
                                 f"level {level} would page {r.user or r.channel} via {r.channel}",
                                 delivery="page", level=str(level), channel=r.channel, result="simulated")
                paged.append((incident, level))
                self.first_paged.setdefault(incident_id, state.due_at)
                state = after_paging(state, self.config, state.due_at)
            self.escalations[incident_id] = state
        return paged

    def _decide(self, kind: DecisionKind, incident: Incident, at: datetime, reason: str, **detail: str) -> None:
        if self.decisions is not None:
            self.decisions.append(Decision(at=at, kind=kind, incident_id=incident.id, policy=incident.policy,
                                           rule="pager", reason=reason, detail=detail))
