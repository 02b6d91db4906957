"""The three drivers of the engine agree on any input (issue 16, B8): `firebreak replay`, `firebreak check`, and
the live worker's way of driving the stages, compared on generated alert streams.

- replay: the stream as recorded lines (`receivedAt` = when the worker would have received each);
- check: the stream as a rules-as-code fixture (`fire` / `resolve` at offsets);
- worker: the engine driven as the Faust worker drives its stages: each record applied at its own time, and
  ticks from a timer that runs every few seconds, late by up to that period, plus one just before each record
  (the worker's timer and its records interleave; a tick that comes before a record at the instant a
  transition falls due is the order check and replay use). Records of one instant are applied together, as
  one poll's batch; the worker's pager loop pages what is due after each tick and each batch.

Compared: every incident (when it opened and resolved, title, severity, status, which alerts it holds and
their state) and every page (incident, level, escalation policy, people, time). The live worker itself is
compared with replay in tests/integration/test_correlation_live.py.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions.loader import load_notifications
from adapters.yamlfile import load_yaml_model
from correlation.engine import Engine, State
from correlation.fingerprint import fingerprint
from correlation.policy import PolicySet
from correlation.projection import project
from correlation.replay import Report, read_lines, replay, suppression_of
from correlation.rules import Rules
from correlation.virtual_pager import VirtualPager
from firebreak.check import DEFAULT_START, Fixture, _Simulation
from schemas import Alert, AlertStatus, Incident

ROOT = Path(__file__).resolve().parents[2]
NOTIFICATIONS = ROOT / "examples" / "notifications.yaml"
TICK_SECONDS = 7  # the worker's tick timer period here: late ticks must stamp transitions as on-time ones do


@cache
def policies_file(group_wait: int, resolve_timeout: int, reopen_window: int, quiet_resolve: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="three-drivers-"))
    path = folder / f"p-{group_wait}-{resolve_timeout}-{reopen_window}-{quiet_resolve}.yaml"
    quiet = f", quiet_resolve: {quiet_resolve}s" if quiet_resolve else ""
    path.write_text(
        f"policies:\n  - {{name: p, group_by: [alertname, service], group_wait: {group_wait}s, "
        f"resolve_timeout: {resolve_timeout}s, reopen_window: {reopen_window}s{quiet}}}\n"
    )
    return path


alert_labels = st.fixed_dictionaries(
    {
        "alertname": st.sampled_from(["HighLatency", "ErrorRate"]),
        "service": st.sampled_from(["checkout", "payments"]),
        "instance": st.sampled_from(["a", "b"]),
        "severity": st.sampled_from(["warning", "critical"]),
    }
)
events = st.lists(
    st.tuples(st.integers(0, 1800), st.booleans(), alert_labels, st.sampled_from(["x", "y"])), min_size=1, max_size=14
).map(lambda es: sorted(es, key=lambda e: e[0]))
timers = st.tuples(
    st.sampled_from([0, 30]), st.sampled_from([0, 60]), st.sampled_from([0, 300]), st.sampled_from([0, 600])
)


def summary(
    incidents: list[Incident], pages: list[tuple[str, int, str, list[str], datetime]], until: datetime
) -> tuple[list, list]:
    order = {inc.id: n for n, inc in enumerate(sorted(incidents, key=lambda i: (i.opened_at, i.title)), start=1)}
    shown = sorted(
        (
            inc.opened_at,
            inc.title,
            inc.severity,
            inc.status.value,
            inc.resolved_at,
            sorted((a.fingerprint, a.status.value, json.dumps(a.annotations)) for a in inc.alerts.values()),
        )
        for inc in incidents
    )
    paged = sorted((order[i], level, policy, to, at) for i, level, policy, to, at in pages if at <= until)
    return shown, paged


def by_replay(stream, policies: Path) -> tuple[Report, list]:
    lines = []
    for offset, firing, labels, note in stream:
        when = (DEFAULT_START + timedelta(seconds=offset)).isoformat()
        lines.append(
            json.dumps(
                {
                    "status": "firing" if firing else "resolved",
                    "labels": labels,
                    "annotations": {"summary": note} if firing else {},
                    "startsAt": when,
                    **({} if firing else {"endsAt": when}),
                    "receivedAt": when,
                }
            )
        )
    rules = Rules(policies=load_yaml_model(policies, PolicySet).with_default(("alertname", "service")))
    config = load_notifications(NOTIFICATIONS)
    pagers: list[VirtualPager] = []

    def pager(engine: Engine, state: State) -> VirtualPager:
        pagers.append(VirtualPager(config, rules.topology, rules.service_label, suppression_of(engine, state)))
        return pagers[0]

    report = replay(read_lines(lines, Report()), rules, pager=pager)
    return report, [(p.incident_id, p.level, p.policy, p.to, p.at) for p in pagers[0].pages]


def replay_view(report: Report) -> list:
    """What replay's report says of each incident: opening, title, severity, final status, alerts."""
    return sorted(
        (i.opened_at, i.title, i.severity, i.status, sorted(fingerprint(m) for m in i.members.values()))
        for i in report.incidents.values()
    )


def check_view(incidents: list[Incident]) -> list:
    return sorted((i.opened_at, i.title, i.severity, i.status.value, sorted(i.alerts)) for i in incidents)


def by_check(stream, policies: Path) -> tuple[list[Incident], list]:
    fixture = Fixture.model_validate(
        {
            "name": "generated",
            "policies": str(policies),
            "notifications": str(NOTIFICATIONS),
            "run_for": "3h",
            "events": [
                {
                    "at": f"{offset}s",
                    ("fire" if firing else "resolve"): labels,
                    "annotations": {"summary": note} if firing else {},
                }
                for offset, firing, labels, note in stream
            ],
            "expect": {},
        }
    )
    simulation = _Simulation(fixture)
    outcome = simulation.run()
    pages = [(simulation.order[p.incident - 1], p.level, p.policy, p.to, DEFAULT_START + p.at) for p in outcome.pages]
    return outcome.incidents, pages


def by_worker(stream, policies: Path, end: datetime) -> tuple[list[Incident], list]:
    rules = Rules(policies=load_yaml_model(policies, PolicySet).with_default(("alertname", "service")))
    engine, state = Engine(rules), State()
    pager = VirtualPager(
        load_notifications(NOTIFICATIONS), rules.topology, rules.service_label, suppression_of(engine, state)
    )
    incidents: dict[str, Incident] = {}

    def observe(emitted) -> None:
        for event in emitted:
            if (incident := project(incidents.get(event.incident_id), event)) is not None:
                incidents[event.incident_id] = incident
                pager.observe(event, incident)

    def tick(now: datetime) -> None:
        observe(engine.tick(state, now)[1])
        pager.escalate(now, incidents)

    records = []
    for offset, firing, labels, note in stream:
        when = DEFAULT_START + timedelta(seconds=offset)
        records.append(
            Alert(
                fingerprint=fingerprint(labels),
                status=AlertStatus.firing if firing else AlertStatus.resolved,
                labels=labels,
                annotations={"summary": note} if firing else {},
                starts_at=when,
                ends_at=None if firing else when,
                source="worker",
                received_at=when,
            )
        )
    period = timedelta(seconds=TICK_SECONDS)
    clock = DEFAULT_START + period / 2  # the tick timer's phase against the records'
    instants = sorted({r.received_at for r in records})
    for instant in instants:
        while clock < instant:
            tick(clock)
            clock += period
        tick(instant)
        for record in (r for r in records if r.received_at == instant):  # one instant's records, as one poll's batch
            observe(engine.apply(state, record, instant)[1])
        pager.escalate(instant, incidents)
    while clock < end + period:
        tick(clock)
        clock += period
    return list(incidents.values()), [(p.incident_id, p.level, p.policy, p.to, p.at) for p in pager.pages]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=events, timer=timers)
def test_replay_check_and_the_worker_agree_on_incidents_times_and_pages(stream, timer):
    policies = policies_file(*timer)
    report, replay_pages = by_replay(stream, policies)
    check_incidents, check_pages = by_check(stream, policies)
    assert report.until is not None
    worker_incidents, worker_pages = by_worker(stream, policies, report.until)
    until = report.until  # replay's horizon: pages after it are not replay's to count (check runs on)
    checked = summary(check_incidents, check_pages, until)
    assert summary(worker_incidents, worker_pages, until) == checked
    assert replay_view(report) == check_view(check_incidents)
    assert summary(check_incidents, replay_pages, until)[1] == checked[1]
