"""Rules as code: a YAML fixture of timestamped alerts, changes, silences and people's commands, run on a
virtual clock through a team's policies, escalation config and runbooks, with the incidents, pages and
runbook runs it must (and must not) produce. `firebreak check` and the pytest plugin (firebreak/pytest_plugin.py)
run the same fixtures, so a policy change is tested in the team's CI before it is deployed.

The engine is the production one: the dedup and grouping stages through `correlation.engine`, the read
model's projection, the pager's routing, levels, schedules, mutes and transient pauses (`correlation.virtual_pager`), and
runbook matching (`actions.matching`) and the executor's run control (`correlation.runs`, on the run simulation
of `correlation.run_simulation`). Nothing is sent and no step is executed: a run lists the steps that would run,
each `when` read against the incident once the input that started the run is applied (the executor reads it
when the step starts, after the steps before it). Not simulated: runbook guardrails (they count real runs in
Redis), step outcomes (each succeeds; each risk gate is approved), and delivery failures.

    name: a checkout latency storm pages the payments team once
    policies: ../correlation.yaml          # paths are relative to the fixture file
    services: ../services.yaml             # optional
    notifications: ../notifications.yaml   # optional: without it, nobody is paged
    runbooks: ../runbooks                  # optional
    start: 2026-03-02T09:00:00Z            # optional; the virtual clock's zero (a Monday, 09:00 UTC)
    run_for: 1h                            # optional: how long time runs on after the last event (default 1h)
    events:
      - {at: 0s, fire: {alertname: HighLatency, service: checkout, instance: a, severity: critical}}
      - {at: 2m, change: {id: d1, service: checkout, summary: deploy 1.4.2}}
      - {at: 5m, silence: {matchers: ['service="search"'], for: 1h, by: ana, comment: reindex}}
      - {at: 6m, ack: {incident: 1, by: ana}}          # incidents are numbered 1, 2, ... as they open
      - {at: 7m, merge: {incident: 2, into: 1, by: ana}}          # a person's merge (GRP-30)
      - {at: 8m, split: {incident: 1, alerts: [{alertname: X, service: web, instance: b}], by: ana}}  # GRP-31
      - {at: 9m, resolve: {alertname: HighLatency, service: checkout, instance: a, severity: critical}}
    expect:
      incidents:                 # exactly these, in the order they opened; only the keys given are compared
        - {alerts: 1, status: resolved, policy: checkout, severity: critical}
      pages:                     # exactly these pages ([] : none may go out)
        - {incident: 1, level: 1, policy: payments, to: [alice, chat], at: 0s}
      runbooks:                  # exactly these runs, with the steps that would run
        - {incident: 1, runbook: restart-service, steps: [restart, settle], gated: []}   # gated: risk: high steps
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from actions.loader import load_notifications, load_runbooks
from actions.matching import context, triggered
from actions.templates import RenderError, evaluate
from adapters.yamlfile import ConfigFileError, load_yaml_model
from correlation import runs
from correlation.engine import Engine, State
from correlation.fingerprint import fingerprint
from correlation.grouping import regroup_refusal
from correlation.policy import Duration, PolicySet
from correlation.projection import project, snapshot
from correlation.replay import suppression_of
from correlation.rules import Rules
from correlation.run_simulation import Need, RunSimulation
from correlation.simulator import Simulation
from correlation.topology import Topology
from correlation.virtual_pager import VirtualPager
from schemas import (
    Alert,
    AlertStatus,
    ChangeEvent,
    CommandAction,
    Incident,
    IncidentCommand,
    IncidentEvent,
    IncidentEventKind,
    Silence,
)
from schemas.runbook import Run, Runbook, StepStatus, Trigger
from schemas.silence import refuse_silencing_everything

DEFAULT_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning
# A fixture's clock runs from `start` for a few bounded durations (each at most 366 days); this range keeps every
# time it reaches inside datetime's, with room to spare.
START_RANGE = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SilenceSpec(_Spec):
    matchers: list[str] = Field(min_length=1)
    duration: Duration = Field(alias="for")
    by: str = "fixture"
    comment: str = "fixture"

    @field_validator("matchers")
    @classmethod
    def _names_what_it_silences(cls, value: list[str]) -> list[str]:
        return refuse_silencing_everything(value)


class CommandSpec(_Spec):
    incident: int = Field(ge=1, description="The incident's number: 1 for the first that opened.")
    by: str = "fixture"
    comment: str = ""


class MergeSpec(CommandSpec):
    into: int = Field(ge=1, description="The incident that stays and takes its alerts, by number.")


class SplitSpec(CommandSpec):
    alerts: list[dict[str, str]] = Field(
        min_length=1, max_length=1000, description="The labels of each alert that moves to a new incident."
    )


class Event(_Spec):
    at: Duration
    fire: dict[str, str] | None = None
    resolve: dict[str, str] | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    change: dict[str, Any] | None = None
    silence: SilenceSpec | None = None
    ack: CommandSpec | None = None
    resolve_incident: CommandSpec | None = None
    merge: MergeSpec | None = None
    split: SplitSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> Event:
        kinds = ("fire", "resolve", "change", "silence", "ack", "resolve_incident", "merge", "split")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"an event has exactly one of {', '.join(kinds)}; this one has {', '.join(given) or 'none'}"
            )
        return self


class ExpectedIncident(_Spec):
    alerts: int | None = None
    firing: int | None = None
    status: Literal["triggered", "acknowledged", "resolved"] | None = None
    policy: str | None = None
    severity: str | None = None
    title: str | None = None
    root: str | None = None
    page_held: bool | None = None
    merged_into: int | None = Field(None, ge=1, description="The incident (by number) a person merged it into.")
    split_from: int | None = Field(None, ge=1, description="The incident (by number) a person split it off.")


class ExpectedPage(_Spec):
    incident: int | None = None
    level: int | None = None
    policy: str | None = None
    to: list[str] | None = None
    at: Duration | None = None


class ExpectedRun(_Spec):
    incident: int | None = None
    runbook: str | None = None
    trigger: str | None = None
    steps: list[str] | None = None
    gated: list[str] | None = None  # the `risk: high` steps among them: they run only once people approve


class Expect(_Spec):
    incidents: list[ExpectedIncident] | None = None
    pages: list[ExpectedPage] | None = None
    runbooks: list[ExpectedRun] | None = None


class Fixture(_Spec):
    name: str
    policies: Path | None = None
    services: Path | None = None
    notifications: Path | None = None
    runbooks: Path | None = None
    start: AwareDatetime = DEFAULT_START
    run_for: Duration = timedelta(hours=1)
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "service"])
    service_label: str = "service"
    events: list[Event] = Field(min_length=1)
    expect: Expect

    @field_validator("start")
    @classmethod
    def _start_in_range(cls, value: datetime) -> datetime:
        if not START_RANGE[0] <= value < START_RANGE[1]:
            raise ValueError(
                f"start must be from {START_RANGE[0].year} up to (not including) {START_RANGE[1].year}; "
                "give a date such as 2026-03-02T09:00:00Z"
            )
        return value


@dataclass
class Page:
    incident: int
    level: int
    policy: str
    to: list[str]
    at: timedelta


@dataclass
class RunbookRun:
    incident: int
    runbook: str
    trigger: str
    steps: list[str]
    gated: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    incidents: list[Incident] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)
    runs: list[RunbookRun] = field(default_factory=list)


@dataclass
class Result:
    fixture: Fixture
    path: Path
    outcome: Outcome
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems


def load(path: Path) -> Fixture:
    """The fixture, its file paths made absolute; ConfigFileError names file:line for a bad one."""
    fixture = load_yaml_model(path, Fixture)
    paths = {
        k: (path.parent / v).resolve()
        for k in ("policies", "services", "notifications", "runbooks")
        if (v := getattr(fixture, k)) is not None
    }
    return fixture.model_copy(update=paths)


class _Simulation:
    """One fixture on the virtual clock: the engine, the read model, the pager's escalations, runbook matching."""

    def __init__(self, fixture: Fixture) -> None:
        self.f = fixture
        policies = load_yaml_model(fixture.policies, PolicySet) if fixture.policies else PolicySet()
        topology = load_yaml_model(fixture.services, Topology) if fixture.services else Topology()
        self.rules = Rules(
            policies=policies.with_default(tuple(fixture.group_by)),
            topology=topology,
            service_label=fixture.service_label,
        )
        self.config = load_notifications(fixture.notifications)
        self.runbooks: list[Runbook] = load_runbooks(fixture.runbooks) if fixture.runbooks else []
        self.engine = Engine(self.rules)
        self.state = State()
        self.incidents: dict[str, Incident] = {}
        self.order: list[str] = []  # incident ids as they opened
        self.pager = VirtualPager(
            self.config, self.rules.topology, self.rules.service_label, suppression_of(self.engine, self.state)
        )
        self.outcome = Outcome()

    def number(self, incident_id: str) -> int:
        return self.order.index(incident_id) + 1

    def run(self) -> Outcome:
        events = sorted(enumerate(self.f.events), key=lambda pair: (pair[1].at, pair[0]))
        end = self.f.start + max(e.at for e in self.f.events) + self.f.run_for
        inputs = [(self.f.start + e.at, self._applying(e)) for _, e in events]
        Simulation(self.engine, self.state, self._observe, self._escalate, self.pager).run(inputs, end)
        self.outcome.incidents = [self.incidents[i] for i in self.order]
        self.outcome.pages = [
            Page(self.number(p.incident_id), p.level, p.policy, p.to, p.at - self.f.start) for p in self.pager.pages
        ]
        return self.outcome

    def _applying(self, event: Event) -> Callable[[datetime], list[IncidentEvent]]:
        def apply(now: datetime) -> list[IncidentEvent]:
            self._apply(event, now)
            return []  # `_apply` observes what it emits itself

        return apply

    def _apply(self, event: Event, now: datetime) -> None:
        if event.fire is not None or event.resolve is not None:
            labels = event.fire if event.fire is not None else event.resolve
            assert labels is not None
            firing = event.fire is not None
            alert = Alert(
                fingerprint=fingerprint(labels),
                status=AlertStatus.firing if firing else AlertStatus.resolved,
                labels=labels,
                annotations=event.annotations,
                starts_at=now,
                ends_at=None if firing else now,
                source="fixture",
                received_at=now,
            )
            self._observe(self.engine.apply(self.state, alert, now)[1])
        elif event.change is not None:
            self.engine.add_change(self.state, ChangeEvent.model_validate({"at": now.isoformat(), **event.change}))
        elif event.silence is not None:
            spec = event.silence
            self.engine.add_silence(
                self.state,
                Silence(
                    id=f"fixture-{len(self.state.silences) + 1}",
                    matchers=spec.matchers,
                    startsAt=now,
                    endsAt=now + spec.duration,
                    createdBy=spec.by,
                    comment=spec.comment,
                ),
            )
        else:
            self._observe(self.engine.command(self.state, self._command(event, now))[1])

    def _numbered(self, event: Event, number: int) -> Incident:
        if number > len(self.order):
            raise ValueError(f"event at {event.at} names incident {number}, but only {len(self.order)} opened by then")
        return self.incidents[self.order[number - 1]]

    def _command(self, event: Event, now: datetime) -> IncidentCommand:
        """A person's command, as the API would send it (a merge or split carries the incident's alerts)."""
        spec = event.ack or event.resolve_incident or event.merge or event.split
        assert spec is not None
        incident = self._numbered(event, spec.incident)
        base = {
            "incident_id": incident.id,
            "correlation_key": incident.correlation_key,
            "actor": spec.by,
            "comment": spec.comment,
            "at": now,
        }
        if event.merge is not None:
            into = self._numbered(event, event.merge.into).id
            return self._refused(
                event, IncidentCommand(action=CommandAction.merge, into=into, snapshot=snapshot(incident, now), **base)
            )
        if event.split is not None:
            chosen = [fingerprint(labels) for labels in event.split.alerts]
            unknown = [labels for labels, fp in zip(event.split.alerts, chosen) if fp not in incident.alerts]
            if unknown:
                raise ValueError(
                    f"event at {event.at}: split names alerts incident {spec.incident} does not hold: "
                    f"{unknown[:3]}; give the labels of alerts it holds"
                )
            return self._refused(
                event,
                IncidentCommand(action=CommandAction.split, alerts=chosen, snapshot=snapshot(incident, now), **base),
            )
        return IncidentCommand(
            action=CommandAction.acknowledge if event.ack is not None else CommandAction.resolve, **base
        )

    def _refused(self, event: Event, command: IncidentCommand) -> IncidentCommand:
        """The command, unless the grouping stage would refuse it (`regroup_refusal`): a fixture that asks for what
        the API and the stage refuse is wrong, and says so rather than passing with the event dropped."""
        entry = self.state.groups.get(command.correlation_key)
        why = regroup_refusal(entry.incidents if entry is not None else {}, command)
        if why is not None:
            raise ValueError(f"event at {event.at}: {command.action.value} refused: {why}")
        return command

    def _observe(self, events: list[IncidentEvent]) -> None:
        started: list[tuple[Runbook, str, str, datetime]] = []
        for event in events:
            incident = project(self.incidents.get(event.incident_id), event)
            if incident is None:
                continue
            if event.kind is IncidentEventKind.opened:
                self.order.append(event.incident_id)
            self.incidents[event.incident_id] = incident
            self.pager.observe(event, incident)
            started += [
                (r, incident.id, event.kind.value, event.at)
                for r in triggered(self.runbooks, event, incident, self.rules.topology, self.rules.service_label)
            ]
        # Steps' `when` read the incident as the executor would find it: after everything this input did (an
        # incident opens before its alerts are added).
        for runbook, incident_id, trigger, at in started:
            self._run(runbook, self.incidents[incident_id], trigger, at)

    def _escalate(self, now: datetime) -> None:
        for incident, level in self.pager.escalate(now, self.incidents):
            if level >= 2:
                for runbook in self._escalated(incident):
                    self._run(runbook, incident, Trigger.escalated.value, now)

    def _escalated(self, incident: Incident) -> list[Runbook]:
        return [
            r
            for r in self.runbooks
            if Trigger.escalated in r.on
            and triggered(
                [r],
                _as_escalation(incident),
                incident,
                self.rules.topology,
                self.rules.service_label,
                Trigger.escalated,
            )
        ]

    def _run(self, runbook: Runbook, incident: Incident, trigger: str, at: datetime) -> None:
        """The run on the executor's core (correlation/run_simulation.py): every step succeeds at once and every
        risk gate is approved; each `when` reads the incident as it is now, without params or earlier outputs."""
        ctx = context(incident, self.rules.topology, self.rules.service_label)

        def answer(need: Need) -> runs.Event:
            if isinstance(need, runs.RenderParams):
                return runs.ParamsRendered({})  # not rendered: `when` sees no params, as documented above
            if isinstance(need, runs.AskWhen):
                step = runs.step_of(runbook, need.step_id)
                assert step is not None and step.when is not None
                try:
                    return runs.WhenAnswered(need.step_id, evaluate(step.when, ctx))
                except (
                    RenderError
                ):  # it reads an earlier step's output, which a check does not have: counted as running
                    return runs.WhenAnswered(need.step_id, True)
            return runs.StepRan(need.step_id, StepStatus.succeeded)

        number = len(self.outcome.runs) + 1
        run = Run(
            id=f"check-{number}",
            runbook=runbook.name,
            incident_id=incident.id,
            trigger=Trigger(trigger),
            trigger_event_id=f"check-{number}",
            created_at=at,
            updated_at=at,
        )
        simulation = RunSimulation(runbook, run, at).play(answer)
        steps = [
            s.id
            for s in runbook.steps
            if s.id in simulation.run.steps and simulation.run.steps[s.id].status is not StepStatus.skipped
        ]
        gated = [s.id for s in runbook.steps if s.id in steps and s.gate is not None]
        self.outcome.runs.append(RunbookRun(self.number(incident.id), runbook.name, trigger, steps, gated))


def _as_escalation(incident: Incident) -> IncidentEvent:
    return IncidentEvent(
        event_id=f"{incident.id}/escalated",
        kind=IncidentEventKind.severity_changed,
        incident_id=incident.id,
        correlation_key=incident.correlation_key,
        group_labels=incident.group_labels,
        seq=incident.seq,
        at=incident.updated_at,
        severity=incident.severity,
    )


def _compare(kind: str, expected: list[BaseModel], actual: list[dict[str, Any]], describe: Any) -> list[str]:
    problems = []
    if len(expected) != len(actual):
        problems.append(
            f"{kind}: expected {len(expected)}, got {len(actual)}: "
            + ("; ".join(describe(a) for a in actual) or "none")
        )
    for index, (want, got) in enumerate(zip(expected, actual), start=1):
        for key, value in want.model_dump(exclude_none=True).items():
            if got.get(key) != value:
                problems.append(f"{kind}[{index}].{key}: expected {value!r}, got {got.get(key)!r} ({describe(got)})")
    return problems


def verify(fixture: Fixture, outcome: Outcome) -> list[str]:
    """Every difference between what the fixture expects and what happened, in words."""
    expect, problems = fixture.expect, []
    if expect.incidents is not None:
        number = {i.id: n for n, i in enumerate(outcome.incidents, start=1)}
        actual = [
            {
                "alerts": i.alert_count,
                "firing": i.firing_count,
                "status": i.status.value,
                "policy": i.policy,
                "severity": i.severity,
                "title": i.title,
                "root": i.probable_root,
                "page_held": i.page_held_until is not None,
                "merged_into": number.get(i.merged_into or ""),
                "split_from": number.get(i.split_from or ""),
            }
            for i in outcome.incidents
        ]
        problems += _compare(
            "incidents",
            list(expect.incidents),
            actual,
            lambda i: f"{i['title']!r} {i['status']}, {i['alerts']} alerts, policy {i['policy']}",
        )
    if expect.pages is not None:
        actual = [
            {
                "incident": p.incident,
                "level": p.level,
                "policy": p.policy,
                "to": p.to,
                "at": f"{int(p.at.total_seconds())}s",
            }
            for p in outcome.pages
        ]  # as a Duration dumps
        problems += _compare(
            "pages",
            list(expect.pages),
            actual,
            lambda p: (
                f"incident {p['incident']} level {p['level']} via {p['policy']} to {', '.join(p['to'])} at {p['at']}"
            ),
        )
    if expect.runbooks is not None:
        actual = [
            {"incident": r.incident, "runbook": r.runbook, "trigger": r.trigger, "steps": r.steps, "gated": r.gated}
            for r in outcome.runs
        ]
        problems += _compare(
            "runbooks",
            list(expect.runbooks),
            actual,
            lambda r: f"{r['runbook']} on incident {r['incident']} ({r['trigger']}): {', '.join(r['steps'])}",
        )
    return problems


def check(path: Path) -> Result:
    """Load, run and verify one fixture. A fixture that cannot be loaded or run is a failed result that says why."""
    try:
        fixture = load(path)
        outcome = _Simulation(fixture).run()
    except (ConfigFileError, ValueError) as exc:
        return Result(Fixture.model_construct(name=path.name), path, Outcome(), [str(exc)])
    return Result(fixture, path, outcome, verify(fixture, outcome))


def fixtures(paths: list[Path]) -> list[Path]:
    """Files given, and every `*.firebreak.yaml` under folders given."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.rglob("*.firebreak.yaml")) if path.is_dir() else [path]
    return found
