"""Issue 16's field reports, parts A, B and E at the unit level: each case as a user met it, asserting the right value.

The `*.firebreak.yaml` fixtures beside this file (tests/unit/fixtures/field-reports/) run as tests too, through
the pytest plugin; the tests here look at what a fixture cannot say (annotations, timelines, decisions).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from correlation.dedup import DedupOutcome, dedup
from correlation.engine import Engine, State
from correlation.policy import Policy, PolicySet
from correlation.projection import project
from correlation.replay import Report, parse_line, read_lines, replay
from correlation.rules import Rules, default_rules
from firebreak.check import check
from ingest.adapters import parse_alertmanager, parse_generic
from ingest.errors import IngestError
from schemas import AlertStatus, IncidentEventKind
from schemas.decision import DecisionKind
from tests.factories import alert, at

FIXTURES = Path(__file__).parent / "fixtures" / "field-reports"
NOW = at(0)


def incidents_of(events, known=None):
    known = dict(known or {})
    for event in events:
        if (incident := project(known.get(event.incident_id), event)) is not None:
            known[event.incident_id] = incident
    return known


# -- A1: a severity rise re-routes ---------------------------------------------------------------------------


def test_a_severity_rise_pages_by_the_route_the_new_severity_takes_and_explain_says_why():
    result = check(FIXTURES / "severity-rise-reroutes.firebreak.yaml")
    assert result.passed, result.problems
    [page] = result.outcome.pages
    assert (page.level, page.policy, page.at) == (1, "default", timedelta(minutes=2))


def test_a_reroute_is_a_decision_that_names_the_change_and_the_route():
    from actions.loader import load_notifications
    from correlation.replay import suppression_of
    from correlation.virtual_pager import VirtualPager

    engine, state = Engine(default_rules()), State(decisions=[])
    pager = VirtualPager(
        load_notifications(Path("examples/notifications.yaml")),
        engine.rules.topology,
        "service",
        suppression_of(engine, state),
        decisions=state.decisions,
    )
    known: dict = {}
    for second, severity in ((0, "warning"), (120, "critical")):
        events = engine.apply(
            state, alert(starts=second, alertname="HighCPU", service="svc-a", severity=severity), at(second)
        )[1]
        for event in events:
            known = incidents_of([event], known)
            pager.observe(event, known[event.incident_id])
    started = [d for d in state.decisions if d.kind is DecisionKind.escalation_started]
    assert len(started) == 1 and started[0].reason.startswith("re-routed (severity rose to critical): route #1")


def test_a_new_probable_root_owned_by_another_team_reroutes_to_that_teams_policy():
    # A sibling of A1: the owner-team fallback depends on the probable root, which changes as alerts join.
    from correlation.replay import suppression_of
    from correlation.topology import Topology
    from correlation.virtual_pager import VirtualPager
    from schemas.notification import NotificationsFile

    topology = Topology.model_validate(
        {"services": [{"name": "db", "team": "data"}, {"name": "api", "team": "core", "depends_on": ["db"]}]}
    )
    rules = Rules(PolicySet(policies=(Policy(name="graph", topology=True),)), topology=topology)
    config = NotificationsFile.model_validate(
        {
            "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/h"}},
            "escalation_policies": {
                "core": {"levels": [{"targets": [{"channel": "hook"}]}]},
                "data": {"levels": [{"targets": [{"channel": "hook"}]}]},
            },
        }
    )
    engine, state = Engine(rules), State(decisions=[])
    pager = VirtualPager(config, topology, "service", suppression_of(engine, state), decisions=state.decisions)
    known: dict = {}
    for second, service in ((0, "api"), (30, "db")):
        for event in engine.apply(state, alert(starts=second, alertname="Down", service=service), at(second))[1]:
            known = incidents_of([event], known)
            pager.observe(event, known[event.incident_id])
        pager.escalate(at(second), known)
    assert [(p.policy, p.at) for p in pager.pages] == [("core", at(0)), ("data", at(30))]
    rerouted = [d.reason for d in state.decisions if d.reason.startswith("re-routed")]
    assert rerouted == [
        "re-routed (the probable root is now db): no route matches; its services' owner team `data` "
        "has an escalation policy of that name; `core` paged it before (exhausted)"
    ]


def test_the_end_of_flapping_routes_again_what_changed_while_it_flapped():
    from correlation.escalation import rerouted, start
    from correlation.topology import Topology
    from schemas import IncidentEvent
    from schemas.notification import NotificationsFile

    config = NotificationsFile.model_validate(
        {
            "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/h"}},
            "escalation_policies": {
                "low": {"levels": [{"targets": [{"channel": "hook"}]}]},
                "high": {"levels": [{"targets": [{"channel": "hook"}]}]},
            },
            "routes": [{"severity": ["critical"], "policy": "high"}, {"policy": "low"}],
        }
    )

    def event(seq: int, kind: str, severity: str, notify: bool = True) -> IncidentEvent:
        return IncidentEvent(
            event_id=f"i:{seq}",
            kind=kind,
            incident_id="i",
            correlation_key="k",
            group_labels={},
            seq=seq,
            at=at(seq),
            severity=severity,
            notify=notify,
        )

    incident = None
    for e in (
        event(1, "opened", "warning"),
        event(2, "flapping_started", "warning"),
        event(3, "severity_changed", "critical", notify=False),
    ):  # held back while it flaps
        incident = project(incident, e)
    current = start("i", "low", "i:1", at(1), 1)
    assert (
        rerouted(
            event(3, "severity_changed", "critical", notify=False), incident, current, config, Topology(), "service"
        )
        is None
    )
    ended = event(4, "flapping_ended", "critical")
    incident = project(incident, ended)
    chosen = rerouted(ended, incident, current, config, Topology(), "service")
    assert chosen is not None and (chosen.policy, chosen.index) == ("high", 0)


# -- A2: resolved by hand while the alert still fires ---------------------------------------------------------


def test_a_still_firing_alert_of_a_person_resolved_incident_opens_a_new_incident_and_pages():
    result = check(FIXTURES / "resolved-by-hand-still-firing.firebreak.yaml")
    assert result.passed, result.problems
    first, _second = result.outcome.incidents
    assert [t.rule for t in first.timeline if t.kind is IncidentEventKind.alert_resolved] == ["GRP-25"]
    assert all(a.status is AlertStatus.resolved for a in first.alerts.values())


def test_inside_the_reopen_window_the_released_alert_reopens_its_incident():
    rules = Rules(PolicySet(policies=(Policy(name="p", group_by=("alertname",), reopen_window=timedelta(minutes=10)),)))
    engine, state = Engine(rules), State()
    firing = alert(alertname="CertExpiring", service="svc-b", instance="lb-a")
    [opened, _] = engine.apply(state, firing, at(0))[1]
    from schemas import CommandAction, IncidentCommand

    engine.command(
        state,
        IncidentCommand(
            action=CommandAction.resolve,
            incident_id=opened.incident_id,
            correlation_key=opened.correlation_key,
            actor="ana",
            at=at(60),
        ),
    )
    again = engine.apply(state, firing.model_copy(update={"received_at": at(120)}), at(120))[1]
    assert [(e.kind.value, e.rule) for e in again] == [("reopened", "GRP-10"), ("alert_added", "GRP-10")]
    assert state.outcomes[DedupOutcome.fired] == 2  # the repeat after the release was news (DUP-10), not a duplicate


def test_an_alert_quiet_resolved_between_two_copies_fires_again_with_the_next_one():
    # A sibling of A2 and B8: GRP-21 resolves from the last refresh while the dedup stage counts every copy. It
    # resolves no earlier than quiet_resolve after the last copy, and a copy after that brings the alert back.
    rules = Rules(PolicySet(policies=(Policy(name="p", group_by=("alertname",), quiet_resolve=timedelta(minutes=10)),)))
    engine, state = Engine(rules), State()
    firing = alert(alertname="QueueStuck", service="billing", instance="a")
    engine.apply(state, firing, at(0))
    for minute in (1, 2, 3):
        engine.apply(state, firing.model_copy(update={"received_at": at(minute * 60)}), at(minute * 60))
    assert engine.tick(state, at(780))[1] == []  # 10 min after the last copy (3 min) at the earliest
    resolved = engine.tick(state, at(800))[1]  # the refresh at 0 + 4/3 of quiet_resolve at the latest
    assert [e.kind.value for e in resolved] == ["alert_resolved", "resolved"]
    again = engine.apply(state, firing.model_copy(update={"received_at": at(860)}), at(860))[1]
    assert [e.kind.value for e in again] == ["opened", "alert_added"]


# -- A3: no sender time may mute an alert ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "status": "resolved",
                "labels": {"alertname": "A", "severity": "critical"},
                "endsAt": "9999-12-31T23:59:59Z",
            },
            "endsAt",
        ),
        ({"labels": {"alertname": "A"}, "endsAt": "2027-06-01T00:00:00Z"}, "endsAt"),  # a firing expiry months ahead
        ({"labels": {"alertname": "A"}, "startsAt": "1970-01-01T00:00:00Z"}, "startsAt"),
        (
            {
                "status": "resolved",
                "labels": {"alertname": "A"},
                "startsAt": "1970-01-01T00:00:00Z",
                "endsAt": "1970-01-02T00:00:00Z",
            },
            "startsAt",
        ),
    ],
)
def test_every_time_a_sender_gives_is_bounded_at_the_edge_with_a_422_naming_the_field(body, field):
    with pytest.raises(IngestError) as info:
        parse_generic(json.dumps(body).encode(), NOW, 10)
    assert info.value.status == 422 and info.value.problems[0].field == field


def test_the_same_bounds_hold_for_alertmanager_webhooks():
    body = {
        "version": "4",
        "status": "resolved",
        "alerts": [
            {
                "status": "resolved",
                "labels": {"alertname": "A"},
                "startsAt": "2026-03-01T08:00:00Z",
                "endsAt": "9999-12-31T23:59:59Z",
            }
        ],
    }
    with pytest.raises(IngestError) as info:
        parse_alertmanager(json.dumps(body).encode(), NOW, 10)
    assert [p.field for p in info.value.problems] == ["alerts[0].endsAt"]


def test_a_stale_decision_never_rests_on_a_time_after_the_record_was_received():
    rules = default_rules()
    entry, _, _ = dedup(None, alert(), 0, at(0), rules)
    # A resolve whose endsAt lies ahead of when it was received (within the edge's skew, or from an old record).
    resolved = alert("resolved", starts=0, ends=3000, received=10)
    entry, _, _ = dedup(entry, resolved, 1, at(10), rules)
    assert entry.resolved_at == at(10)
    entry, out, outcome = dedup(entry, alert(starts=20, received=20), 2, at(20), rules)
    assert outcome is DedupOutcome.fired and out


def test_a_resolve_from_another_sender_cannot_mute_a_source_that_keeps_sending_the_alert_firing():
    rules = default_rules()
    started = alert(starts=0, received=0)
    entry, _, _ = dedup(None, started, 0, at(0), rules)
    # Someone else (any ingest token) sends a resolve with no times at 600 s.
    entry, _, _ = dedup(entry, alert("resolved", starts=600, received=600), 1, at(600), rules)
    # A copy in flight within a minute of it is a late copy, as before...
    entry, _, outcome = dedup(entry, started.model_copy(update={"received_at": at(630)}), 2, at(630), rules)
    assert outcome is DedupOutcome.stale
    # ...but the source's next re-send, a minute later still, fires again.
    entry, out, outcome = dedup(entry, started.model_copy(update={"received_at": at(700)}), 3, at(700), rules)
    assert outcome is DedupOutcome.fired and [e.rule for e in out] == ["DUP-11"]


def test_a_resolve_sent_before_an_alert_was_ever_seen_cannot_mute_it_either():
    rules = default_rules()
    entry, _, _ = dedup(None, alert("resolved", starts=600, received=600), 0, at(600), rules)
    entry, out, outcome = dedup(entry, alert(starts=0, received=700), 1, at(700), rules)
    assert outcome is DedupOutcome.fired and [e.rule for e in out] == ["DUP-11"]


def test_a_starts_at_ahead_of_receipt_cannot_make_an_alert_look_like_it_resolves_by_itself():
    # The transient pause learns how long firings last; a startsAt 50 minutes ahead used to make every one 0 s long.
    rules = default_rules()
    ahead = alert(starts=3000, received=0)
    entry, _, _ = dedup(None, ahead, 0, at(0), rules)
    entry, _, _ = dedup(entry, alert("resolved", starts=3000, ends=3000, received=600), 1, at(600), rules)
    assert entry.lifetimes == [600.0]


@pytest.mark.parametrize("value", ["1764522000", "1764522000.5", "0001-01-01T00:00:00+23:59"])
def test_a_time_is_an_rfc3339_string_not_an_epoch_in_disguise_nor_a_near_zero_time(value):
    with pytest.raises(IngestError) as info:
        parse_generic(json.dumps({"labels": {"alertname": "A"}, "startsAt": value}).encode(), NOW, 10)
    assert [p.field for p in info.value.problems] == ["startsAt"]


def test_truncated_alerts_is_bounded_so_the_counter_stays_exact():
    body = {
        "version": "4",
        "status": "firing",
        "truncatedAlerts": 99999999999999999999999,
        "alerts": [{"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2026-03-01T09:00:00Z"}],
    }
    with pytest.raises(IngestError) as info:
        parse_alertmanager(json.dumps(body).encode(), NOW, 10)
    assert [p.field for p in info.value.problems] == ["truncatedAlerts"]


@pytest.mark.parametrize("received", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:01Z", "2024-01-01T00:00:00Z"])
def test_replay_skips_a_line_whose_times_ingest_would_have_refused_naming_them(received):
    line = json.dumps({"labels": {"alertname": "A"}, "startsAt": "2026-03-01T09:00:00Z", "receivedAt": received})
    report = Report()
    assert read_lines([line], report) == [] and report.bad_lines[0].line == 1
    assert "startsAt" in report.bad_lines[0].problem or "outside the years" in report.bad_lines[0].problem


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"])
def test_oncall_who_refuses_a_time_no_schedule_is_computed_for(monkeypatch, when):
    from click.testing import CliRunner

    from firebreak.cli import main

    monkeypatch.setenv("FIREBREAK_NOTIFICATIONS_FILE", "examples/notifications.yaml")
    result = CliRunner().invoke(main, ["oncall", "who", "--team", "default", "--at", when])
    assert result.exit_code == 2 and "outside the years 1970 to 8999" in result.output


# -- A4: repeats carry news ---------------------------------------------------------------------------------


def test_a_repeat_with_new_annotations_updates_the_incident_but_pages_nobody():
    result = check(FIXTURES / "repeats-carry-news.firebreak.yaml")
    assert result.passed, result.problems
    [incident] = result.outcome.incidents
    [shown] = incident.alerts.values()
    assert shown.annotations == {"summary": "disk 97% full"}
    assert IncidentEventKind.alert_updated not in {t.kind for t in incident.timeline}  # shown, not a timeline entry


def test_a_repeat_with_a_new_generator_url_is_an_update_and_the_same_copy_again_is_not():
    rules = default_rules()
    first = alert()
    entry, _, _ = dedup(None, first, 0, at(0), rules)
    moved = first.model_copy(update={"generator_url": "http://prometheus/graph?g0.expr=up"})
    entry, out, outcome = dedup(entry, moved, 1, at(30), rules)
    assert outcome is DedupOutcome.duplicate and [(e.refresh, e.updated, e.rule) for e in out] == [
        (True, True, "DUP-9")
    ]
    entry, out, _ = dedup(entry, moved, 2, at(60), rules)
    assert out == []


# -- A5: Alertmanager says it dropped alerts ---------------------------------------------------------------------


def test_truncated_alerts_travel_to_the_incident_timeline_and_the_decision_log_with_the_fix():
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "team-a",
        "truncatedAlerts": 7,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "HighLatency", "service": "checkout", "instance": "a"},
                "startsAt": "2026-03-01T09:00:00Z",
            }
        ],
    }
    parsed = parse_alertmanager(json.dumps(body).encode(), NOW, 10)
    assert (parsed.receiver, parsed.truncated_alerts, parsed.alerts[0].truncated_alerts) == ("team-a", 7, 7)
    engine, state = Engine(default_rules()), State(decisions=[])
    events = engine.apply(state, parsed.alerts[0], NOW)[1]
    [note] = [e for e in events if e.kind is IncidentEventKind.alerts_truncated]
    assert note.rule == "GRP-26" and "7 alerts" in note.comment and "max_alerts" in note.comment
    [incident] = incidents_of(events).values()
    assert any(t.kind is IncidentEventKind.alerts_truncated for t in incident.timeline)
    assert any(d.kind is DecisionKind.alerts_truncated and "max_alerts" in d.reason for d in state.decisions)
    from correlation.explain import incident_report

    story = incident_report(note.incident_id, [d for d in state.decisions if d.incident_id == note.incident_id])
    assert any("alerts_truncated" in text and "max_alerts" in text for text in story["text"])


# -- B7: a past endsAt resolves, in every path that reads alerts ------------------------------------------------


def test_an_alert_without_status_whose_ends_at_has_passed_is_resolved_at_ingest():
    body = {"labels": {"alertname": "A"}, "startsAt": "2026-03-01T08:00:00Z", "endsAt": "2026-03-01T08:59:00Z"}
    [resolved] = parse_generic(json.dumps(body).encode(), NOW, 10).alerts
    assert resolved.status is AlertStatus.resolved
    ahead = {**body, "endsAt": "2026-03-01T09:04:00Z"}  # an API v2 sender's expiry, still ahead: firing
    assert parse_generic(json.dumps(ahead).encode(), NOW, 10).alerts[0].status is AlertStatus.firing
    explicit = {**body, "status": "firing"}  # a status given is the status
    assert parse_generic(json.dumps(explicit).encode(), NOW, 10).alerts[0].status is AlertStatus.firing


def test_replay_reads_a_past_ends_at_as_resolved():
    line = json.dumps(
        {
            "labels": {"alertname": "A"},
            "startsAt": "2026-03-01T08:00:00Z",
            "endsAt": "2026-03-01T08:59:00Z",
            "receivedAt": "2026-03-01T09:00:00Z",
        }
    )
    when, parsed = parse_line(line, 1)
    assert parsed.status is AlertStatus.resolved and when == NOW
    v2 = json.dumps(
        {
            "labels": {"alertname": "A"},
            "startsAt": "2026-03-01T08:00:00Z",
            "status": {"state": "active"},
            "endsAt": "2026-03-01T08:59:00Z",
            "receivedAt": "2026-03-01T09:00:00Z",
        }
    )
    assert parse_line(v2, 2)[1].status is AlertStatus.resolved  # API v2's state is not a firing status


def test_an_alert_sent_without_status_resolves_when_its_ends_at_passes_unless_a_newer_copy_moves_it():
    # Alertmanager API v2 (Prometheus): every minute a copy with endsAt four minutes ahead; the sender stops.
    lines = [
        json.dumps(
            {
                "labels": {"alertname": "Expiring"},
                "startsAt": "2026-03-01T09:00:00Z",
                "endsAt": at(minute * 60 + 240).isoformat(),
                "receivedAt": at(minute * 60).isoformat(),
            }
        )
        for minute in range(6)
    ]
    report = replay(read_lines(lines, Report()), default_rules(), report=Report(decisions=[]))
    resolved = [d for d in report.decisions if d.kind is DecisionKind.alert_resolved and d.rule == "GRP-29"]
    [when] = [d.at for d in resolved]
    assert at(5 * 60 + 240) <= when <= at(5 * 60 + 240 + 80)  # not before the last copy's endsAt, 80 s after at most
    assert report.events["opened"] == 1 and report.events["resolved"] == 1  # though no line follows


def test_an_expired_alert_whose_source_sends_it_again_fires_again():
    engine, state = Engine(default_rules()), State()
    copy = alert(starts=0, alertname="Expiring", service="s", instance="a").model_copy(update={"expires_at": at(240)})
    [opened, _] = engine.apply(state, copy, at(0))[1]
    assert [e.rule for e in engine.tick(state, at(320))[1]] == ["GRP-29", "GRP-9"]
    again = copy.model_copy(update={"received_at": at(600), "expires_at": at(840)})
    events = engine.apply(state, again, at(600))[1]
    assert [e.kind.value for e in events] == ["opened", "alert_added"] and events[0].incident_id != opened.incident_id


def test_a_status_given_by_the_sender_is_never_overridden_by_an_expiry():
    body = [
        {"status": "firing", "labels": {"alertname": "A"}, "endsAt": "2026-03-01T09:04:00Z"},
        {"labels": {"alertname": "B"}, "endsAt": "2026-03-01T09:04:00Z"},
    ]
    given, derived = parse_generic(json.dumps(body).encode(), NOW, 10).alerts
    assert given.expires_at is None and derived.expires_at == at(240)


# -- B8: quiet_resolve in replay ---------------------------------------------------------------------------------


def test_quiet_resolve_never_resolves_before_the_source_has_been_quiet_that_long():
    # Sends at 0, 60, 330, 390, 450 s with quiet_resolve 5m: the longest gap is 4m30s, so one incident, one page.
    rules = Rules(PolicySet(policies=(Policy(name="p", group_by=("alertname",), quiet_resolve=timedelta(minutes=5)),)))
    lines = [
        json.dumps(
            {"labels": {"alertname": "Q"}, "startsAt": "2026-03-01T09:00:00Z", "receivedAt": at(second).isoformat()}
        )
        for second in (0, 60, 330, 390, 450)
    ]
    report = replay(read_lines(lines, Report()), rules, report=Report(decisions=[]))
    assert report.events["opened"] == 1 and report.events["reopened"] == 0
    resolved = [d.at for d in report.decisions if d.kind is DecisionKind.quiet_resolved]
    assert len(resolved) == 1 and at(450 + 300) <= resolved[0] <= at(450 + 400)


def test_replay_resolves_an_alert_that_goes_quiet_at_the_end_at_its_due_time():
    rules = Rules(PolicySet(policies=(Policy(name="p", group_by=("alertname",), quiet_resolve=timedelta(minutes=10)),)))
    lines = [
        json.dumps(
            {"labels": {"alertname": "Q"}, "startsAt": "2026-03-01T09:00:00Z", "receivedAt": f"2026-03-01T09:0{m}:00Z"}
        )
        for m in (0, 4, 8)
    ]  # each copy a refresh
    report = replay(read_lines(lines, Report()), rules, report=Report(decisions=[]))
    resolved = [d for d in report.decisions if d.kind is DecisionKind.quiet_resolved]
    assert [d.at for d in resolved] == [at(480 + 800)]  # 4/3 of quiet_resolve after the last refresh, no line after
    assert report.events["resolved"] == 1


def test_an_overdue_quiet_resolve_is_stamped_when_it_fell_due_not_when_the_next_line_came():
    rules = Rules(PolicySet(policies=(Policy(name="p", group_by=("alertname",), quiet_resolve=timedelta(minutes=10)),)))
    quiet = json.dumps(
        {"labels": {"alertname": "Q"}, "startsAt": "2026-03-01T09:00:00Z", "receivedAt": "2026-03-01T09:00:00Z"}
    )
    back = json.dumps(
        {"labels": {"alertname": "Q"}, "startsAt": "2026-03-01T09:30:00Z", "receivedAt": "2026-03-01T09:30:00Z"}
    )
    report = replay(read_lines([quiet, back], Report()), rules, report=Report(decisions=[]))
    resolved = [d.at for d in report.decisions if d.kind is DecisionKind.incident_resolved]
    assert resolved[0] == at(800)  # not 09:30, the instant the alert came back
    assert report.events["opened"] == 2 and report.events["reopened"] == 0


def test_replay_pages_every_level_check_and_the_worker_page_after_the_last_line():
    from actions.loader import load_notifications
    from correlation.replay import suppression_of
    from correlation.virtual_pager import VirtualPager

    config = load_notifications(Path("examples/notifications.yaml"))
    rules = default_rules()
    line = json.dumps(
        {
            "labels": {"alertname": "Down", "service": "checkout", "severity": "critical"},
            "startsAt": at(0).isoformat(),
            "receivedAt": at(0).isoformat(),
        }
    )
    report = replay(
        read_lines([line], Report()),
        rules,
        pager=lambda engine, state: VirtualPager(config, rules.topology, "service", suppression_of(engine, state)),
    )
    assert [(p.level, p.at) for p in report.paged] == [(1, at(0)), (2, at(15)), (3, at(30))]


# -- E16: unknown fields on a webhook's alert objects -----------------------------------------------------------


def test_unknown_fields_on_webhook_alerts_are_ignored_and_reported():
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "A"},
                "startsAt": "2026-03-01T09:00:00Z",
                "silenceURL": "http://am/silence",
                "someFutureField": {"x": 1},
            }
        ],
    }
    parsed = parse_alertmanager(json.dumps(body).encode(), NOW, 10)
    assert len(parsed.alerts) == 1 and parsed.unknown_fields == ["silenceURL", "someFutureField"]
