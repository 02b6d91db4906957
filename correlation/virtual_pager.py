"""The pager on a virtual clock: the escalation core (correlation/escalation.py `apply`, `due`) driven by the
simulator, without Redis or deliveries. `firebreak check` (fixtures) and `firebreak replay --notifications` (a
recorded stream) run it, so both page exactly as the live pager (actions/pager.py), which calls the same core.

What it leaves out is what needs the outside world: delivery failures and retries, dedup keys across
workers, and the update and notice messages (acknowledge and resolve notices always go out live). What it
adds is replay's model of the people: with `ack_after`, each incident is acknowledged that long after its
first page.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from correlation.escalation import (
    Escalation,
    EscalationStatus,
    HeldOff,
    Output,
    Page,
    Paging,
    Started,
    apply,
    firing_alerts,
    muted_by,
    tick,
)
from correlation.topology import Topology
from schemas import Incident, IncidentAlert, IncidentEvent
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
    round: int = 0  # how many times the escalation policy had started over
    incident_policy: str = ""  # the correlation policy of the incident


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
    held_off: list[Incident] = field(default_factory=list)  # resolved within their transient pause: never paged
    # When each active escalation falls due, as a heap of (due, order, incident id); an item whose escalation
    # moved on or stopped is stale and skipped. `order` is the incident's first escalation: escalations due
    # together page in that order.
    _due: list[tuple[datetime, int, str]] = field(default_factory=list)
    _order: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paging = Paging(self.config, self.topology, self.service_label)

    def _store(self, incident_id: str, state: Escalation) -> None:
        self.escalations[incident_id] = state
        order = self._order.setdefault(incident_id, len(self._order))
        if state.status is EscalationStatus.active:
            heapq.heappush(self._due, (state.due_at, order, incident_id))

    def _current(self, item: tuple[datetime, int, str]) -> bool:
        state = self.escalations[item[2]]
        return state.status is EscalationStatus.active and state.due_at == item[0]

    def observe(self, event: IncidentEvent, incident: Incident) -> None:
        """The paging consequence of one incident event (the incident as projected after it), at its time."""
        state, outputs = apply(self.escalations.get(incident.id), event, incident, event.at, self.paging)
        if state is not None and state is not self.escalations.get(incident.id):
            self._store(incident.id, state)
        for output in outputs:
            if isinstance(output, Started) and output.outcome == "started":
                self.first_paged.pop(incident.id, None)  # reopened: paging starts afresh, and so would the people
            self._keep(output, incident)

    def next_due(self) -> datetime | None:
        """When the next level of an active escalation falls due (held ones included); None if none is active."""
        while self._due and not self._current(self._due[0]):
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    def escalate(self, now: datetime, incidents: Mapping[str, Incident]) -> list[tuple[Incident, int]]:
        """Page every level due by `now`, each at the time it was due; returns (incident, level) paged."""
        if not self._due or self._due[0][0] > now:
            return []
        paged: list[tuple[Incident, int]] = []
        due: list[tuple[int, str]] = []
        while self._due and self._due[0][0] <= now:
            item = heapq.heappop(self._due)
            if self._current(item):
                due.append((item[1], item[2]))
        for _, incident_id in sorted(set(due)):
            state = self.escalations[incident_id]
            while state.status is EscalationStatus.active and state.due_at <= now:
                incident = incidents[incident_id]
                acked = self.first_paged.get(incident_id)
                if acked is not None and self.ack_after is not None and state.due_at >= acked + self.ack_after:
                    self._keep(
                        Decision(
                            at=acked + self.ack_after,
                            kind=DecisionKind.not_paged,
                            incident_id=incident.id,
                            policy=incident.policy,
                            rule="pager",
                            reason=f"acknowledged (assumed: {self.ack_after} after the first page): level "
                            f"{state.level + 1} and later do not page",
                        ),
                        incident,
                    )
                    state = state.model_copy(update={"status": EscalationStatus.stopped})
                    break
                muted = muted_by([self.suppression(a, state.due_at) for a in firing_alerts(incident)])
                state, outputs = tick(state, incident, state.due_at, muted, self.paging)
                for output in outputs:
                    self._keep(output, incident)
                    if isinstance(output, Page):
                        paged.append((incident, output.level))
                        self.first_paged.setdefault(incident_id, output.at)
            self._store(incident_id, state)
        return paged

    def _keep(self, output: Output, incident: Incident) -> None:
        """Record what the core decided: pages, and decisions when a decision list is kept."""
        if isinstance(output, Page):
            who = output.recipients
            self.pages.append(
                VirtualPage(
                    output.state.incident_id,
                    output.level,
                    output.state.policy,
                    sorted({r.user or r.channel for r in who}),
                    sorted({r.channel for r in who}),
                    output.at,
                    output.state.round,
                    incident.policy,
                )
            )
            for r in who:
                self._keep(
                    Decision(
                        at=output.at,
                        kind=DecisionKind.paged,
                        incident_id=incident.id,
                        policy=incident.policy,
                        rule="pager",
                        reason=f"level {output.level} would page {r.user or r.channel} via {r.channel}",
                        detail={
                            "delivery": "page",
                            "level": str(output.level),
                            "channel": r.channel,
                            "result": "simulated",
                        },
                    ),
                    incident,
                )
        elif isinstance(output, HeldOff):
            self.held_off.append(incident)
        elif isinstance(output, Decision) and self.decisions is not None:
            self.decisions.append(output)
