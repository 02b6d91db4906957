"""Replay: a recorded alert stream through the same engine, offline and in event time, and what it would do.

Input lines are Alertmanager alert objects (webhook or API v2 form) or the generic schema; a line's time is
its `receivedAt` if it has one, else `startsAt` (firing) or `endsAt` (resolved). A line without `status` is
resolved when its `endsAt` is at or before its time (API v2's rule, as ingest reads it: `AlertIn.status_at`).
Lines are applied in time order on the virtual clock of `correlation.simulator`, every timer taking effect
when it falls due, as in the worker and `check`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from correlation.engine import Engine, State
from correlation.fingerprint import fingerprint
from correlation.projection import project
from correlation.rules import Rules
from correlation.simulator import Simulation
from correlation.virtual_pager import VirtualPager
from schemas import Alert, AlertIn, ChangeEvent, Incident, IncidentAlert, IncidentEvent, IncidentEventKind, Silence
from schemas.alert import EARLIEST, LATEST, time_problems
from schemas.decision import Decision
from schemas.notification import NotificationsFile

_KEEP = ("status", "labels", "annotations", "startsAt", "endsAt", "generatorURL")
# What would reach a person: the pages the simulated pager sends (correlation/escalation.py decides them, as it
# does live), and notifications also for severity changes, resolves and the end of flapping; nothing while an
# incident flaps (its events carry notify=false).
NOTIFYING_KINDS = (IncidentEventKind.severity_changed, IncidentEventKind.resolved)
# Without an escalation config, replay pages with this one: everyone, once, at level 1. Its pages are what
# `pages` counts: one for each incident the live pager would page (opened, reopened, flapping ended, a held
# page that went out), none for one muted until it resolved or resolved within its transient pause.
EVERYONE = NotificationsFile.model_validate(
    {
        "channels": {"page": {"type": "webhook", "url": "http://127.0.0.1/replay"}},
        "escalation_policies": {"everyone": {"levels": [{"targets": [{"channel": "page"}]}]}},
        "default_policy": "everyone",
    }
)


class Page(Protocol):
    """What replay counts of one page a pager sent (correlation/virtual_pager.py's VirtualPage)."""

    @property
    def level(self) -> int: ...

    @property
    def round(self) -> int: ...  # how many times the escalation policy had started over

    @property
    def incident_policy(self) -> str: ...  # the correlation policy of the incident

    @property
    def policy(self) -> str: ...  # the escalation policy

    @property
    def to(self) -> Sequence[str]: ...  # the people paged, and the channels paged as such


class Pager(Protocol):
    """What replay needs of a pager on a virtual clock (correlation/virtual_pager.py is the one Firebreak has)."""

    def observe(self, event: IncidentEvent, incident: Incident) -> None: ...

    def escalate(self, now: datetime, incidents: dict[str, Incident]) -> list[tuple[Incident, int]]: ...

    def next_due(self) -> datetime | None: ...

    @property
    def pages(self) -> Sequence[Page]: ...  # in the order they were sent

    @property
    def held_off(self) -> Sequence[Incident]: ...  # resolved within their transient pause


@dataclass(frozen=True)
class BadLine:
    line: int
    problem: str


def parse_line(text: str, line: int, ignore: frozenset[str] = frozenset()) -> tuple[datetime, Alert] | BadLine:
    """One input line as an alert and its event time."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadLine(line, f"not JSON ({exc.msg})")
    if not isinstance(raw, dict):
        return BadLine(line, "not a JSON object")
    status = raw.get("status")
    if isinstance(status, dict):  # Alertmanager API v2: {"state": "active" | "suppressed" | "unprocessed"}: not
        del raw["status"]  # a firing/resolved status; endsAt decides, as Alertmanager reads it
    try:
        parsed = AlertIn.model_validate({k: raw[k] for k in _KEEP if k in raw})
    except ValidationError as exc:
        return BadLine(line, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3]))
    try:
        received = datetime.fromisoformat(raw["receivedAt"]) if isinstance(raw.get("receivedAt"), str) else None
    except ValueError:
        return BadLine(line, f"receivedAt {raw['receivedAt']!r} is not an RFC 3339 time")
    if received is not None and received.tzinfo is None:
        return BadLine(line, "receivedAt has no time zone; add one (e.g. Z)")
    explicit = "status" in parsed.model_fields_set
    resolved_line = explicit and parsed.status == "resolved" and parsed.ends_at
    when = received or (parsed.ends_at if resolved_line else parsed.starts_at)
    if when is None:
        return BadLine(line, "no time: give startsAt (or receivedAt) so the line has a place in event time")
    if not EARLIEST <= when < LATEST:
        return BadLine(line, f"its time {when.isoformat()} is outside the years 1970 to 8999")
    problems = time_problems(parsed, when)  # what ingest would have refused, relative to the line's own time
    if problems:
        return BadLine(line, "; ".join(f"{name}: {problem}" for name, problem in problems))
    alert = Alert(
        fingerprint=fingerprint(parsed.labels, ignore),
        status=parsed.status_at(when),
        labels=parsed.labels,
        annotations=parsed.annotations,
        starts_at=parsed.starts_at or when,
        ends_at=parsed.ends_at,
        generator_url=parsed.generator_url,
        source="replay",
        received_at=when,
        expires_at=parsed.expiry_at(when),
    )
    return when, alert


@dataclass
class ReplayIncident:
    id: str
    policy: str
    title: str
    severity: str | None
    opened_at: datetime
    status: str = "triggered"
    probable_root: str | None = None
    members: dict[str, dict[str, str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "policy": self.policy,
            "title": self.title,
            "severity": self.severity,
            "probable_root": self.probable_root,
            "opened_at": self.opened_at.isoformat(),
            "status": self.status,
            "alerts": sorted(self.members.values(), key=lambda labels: sorted(labels.items())),
        }


@dataclass
class Report:
    lines: int = 0
    alerts_in: int = 0
    bad_lines: list[BadLine] = field(default_factory=list)
    fingerprints: set[str] = field(default_factory=set)
    events: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    per_policy: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    incidents: dict[str, ReplayIncident] = field(default_factory=dict)
    decisions: list[Decision] | None = None  # the decision log, when asked for (`replay --explain`)
    paged: list[Page] | None = None  # with an escalation config: each page it sent (level, policy, to), in order
    # Every page the simulated pager sent (with EVERYONE if no escalation config was given), and the incidents
    # that resolved within their transient pause, so never paged.
    simulated: list[Page] = field(default_factory=list)
    held_off: list[Incident] = field(default_factory=list)
    until: datetime | None = None  # where time stopped: the last timer after the last line (a day after it at most)

    def observe(self, event: IncidentEvent) -> None:
        self.events[event.kind.value] += 1
        policy = self.per_policy[event.policy]
        if event.kind is IncidentEventKind.opened:
            policy["incidents"] += 1
            self.incidents[event.incident_id] = ReplayIncident(
                event.incident_id, event.policy, event.title or "", event.severity, event.at
            )
        incident = self.incidents.get(event.incident_id)
        if incident is None:
            return
        incident.severity = event.severity
        incident.probable_root = event.probable_root
        if (event.kind in NOTIFYING_KINDS and event.notify) or event.kind is IncidentEventKind.flapping_ended:
            policy["notifications"] += 1
        if event.kind is IncidentEventKind.alert_added and event.alert is not None:
            incident.members[event.alert.fingerprint] = event.alert.labels
        if event.kind in (
            IncidentEventKind.resolved,
            IncidentEventKind.reopened,
            IncidentEventKind.acknowledged,
            IncidentEventKind.merged,
        ):
            incident.status = {
                "resolved": "resolved",
                "reopened": "triggered",
                "acknowledged": "acknowledged",
                "merged": "merged",
            }[event.kind.value]
        if event.kind is IncidentEventKind.merged:  # its alerts are the target's now (GRP-30)
            incident.members.clear()
        elif event.kind is IncidentEventKind.alerts_split:  # related: the new incident, then the moved alerts
            for fp in event.related[1:]:
                incident.members.pop(fp, None)

    def summary(self) -> dict[str, Any]:
        opened = self.events["opened"]
        per_policy = {name: Counter(c) for name, c in self.per_policy.items()}
        for page in self.simulated:  # the first page of each escalation: someone was paged for the incident
            if page.level == 1 and page.round == 0:
                per_policy.setdefault(page.incident_policy, Counter())["pages"] += 1
                per_policy[page.incident_policy]["notifications"] += 1
        for incident in self.held_off:
            per_policy.setdefault(incident.policy, Counter())["pages_held_off"] += 1
        pages = sum(p["pages"] for p in per_policy.values())
        return {
            "lines": self.lines,
            "alerts_in": self.alerts_in,
            "bad_lines": len(self.bad_lines),
            "distinct_alerts": len(self.fingerprints),
            "incidents_opened": opened,
            "noise_reduction": round(1 - opened / self.alerts_in, 4) if self.alerts_in else 0.0,
            "pages": pages,
            "notifications": sum(p["notifications"] for p in per_policy.values()),
            "dedup": dict(self.outcomes),
            "per_policy": {name: dict(c) for name, c in sorted(per_policy.items())},
            **({"paging": _paging(self.paged)} if self.paged is not None else {}),
        }


def _paging(pages: list[Page]) -> dict[str, Any]:
    """What the escalation config would have sent, nobody acknowledging: by level, person and policy."""
    return {
        "pages": len(pages),
        "by_level": {str(k): v for k, v in sorted(Counter(p.level for p in pages).items())},
        "by_recipient": dict(sorted(Counter(who for p in pages for who in p.to).items())),
        "by_escalation_policy": dict(sorted(Counter(p.policy for p in pages).items())),
    }


def replay(
    items: Iterable[tuple[datetime, Alert]],
    rules: Rules,
    on_alert: Callable[[], None] | None = None,
    report: Report | None = None,
    silences: Iterable[Silence] = (),
    changes: Iterable[ChangeEvent] = (),
    pager: Callable[[Engine, State], Pager] | None = None,
) -> Report:
    """Apply `items` (already in time order) on the virtual clock of `correlation.simulator`, as `check` does:
    every timer takes effect when it falls due, and time runs on past the last alert until no timer is left
    (group_wait, resolve_timeout, quiet_resolve, expiries, flapping hold-down, reopen window, and with `pager`
    every escalation level and held page), a day after the last alert at most. With `pager` (made from the
    engine and its state, for its suppression lookups), levels page when they are due, between the recorded
    alerts, and nobody acknowledges unless the pager models it (`ack_after`)."""
    report = report or Report()
    engine, state = Engine(rules), State(silences=list(silences), changes=list(changes), decisions=report.decisions)
    paging = (
        pager(engine, state)
        if pager is not None
        else VirtualPager(EVERYONE, rules.topology, rules.service_label, suppression_of(engine, state))
    )
    incidents: dict[str, Incident] = {}

    def observe(events: list[IncidentEvent]) -> None:
        for event in events:
            report.observe(event)
            if (incident := project(incidents.get(event.incident_id), event)) is not None:
                incidents[event.incident_id] = incident
                paging.observe(event, incident)

    def escalate(until: datetime) -> None:
        paging.escalate(until, incidents)

    def feed(alert: Alert) -> Callable[[datetime], list[IncidentEvent]]:
        def apply(now: datetime) -> list[IncidentEvent]:
            report.alerts_in += 1
            report.fingerprints.add(alert.fingerprint)
            if on_alert is not None:
                on_alert()
            return engine.apply(state, alert, now)[1]

        return apply

    report.until = Simulation(engine, state, observe, escalate, paging).run(
        (when, feed(alert)) for when, alert in items
    )
    report.outcomes.update({k.value: v for k, v in state.outcomes.items()})
    report.simulated, report.held_off = list(paging.pages), list(paging.held_off)
    if pager is not None:
        report.paged = list(paging.pages)
    return report


def suppression_of(engine: Engine, state: State) -> Callable[[IncidentAlert, datetime], str | None]:
    """What suppresses an incident's alert at an instant, by the engine's silences and inhibition sources."""
    return lambda alert, at: engine.suppression(state, alert.labels, alert.fingerprint, at)[0]


def read_lines(
    lines: Iterable[str], report: Report, ignore: frozenset[str] = frozenset()
) -> list[tuple[datetime, Alert]]:
    """Parse lines (bad ones go to the report); returns (time, alert) in time order, stable for ties."""
    parsed: list[tuple[datetime, int, Alert]] = []
    for number, text in enumerate(lines, start=1):
        report.lines = number
        if not text.strip():
            continue
        result = parse_line(text, number, ignore)
        if isinstance(result, BadLine):
            report.bad_lines.append(result)
        else:
            parsed.append((result[0], number, result[1]))
    parsed.sort(key=lambda item: (item[0], item[1]))
    return [(when, alert) for when, _, alert in parsed]
