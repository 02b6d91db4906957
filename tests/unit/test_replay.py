import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from correlation.policy import Policy, PolicySet
from correlation.replay import Report, read_lines, replay
from correlation.rules import Rules, default_rules

ROOT = Path(__file__).resolve().parents[2]


def line(status, instance, at, service="checkout", alertname="HighLatency", **extra):
    return json.dumps(
        {
            "status": status,
            "labels": {"alertname": alertname, "service": service, "instance": instance},
            "startsAt": "2026-03-01T09:00:00Z",
            "endsAt": at if status == "resolved" else "0001-01-01T00:00:00Z",
            "receivedAt": at,
            **extra,
        }
    )


def run(lines, policies=None):
    report = Report()
    items = read_lines(lines, report)
    return replay(items, Rules(policies) if policies else default_rules(), report=report)


def test_replay_reports_noise_reduction_and_incident_members():
    lines = [line("firing", f"i{n % 3}", f"2026-03-01T09:00:{n:02d}Z") for n in range(30)]
    lines.append(line("resolved", "i0", "2026-03-01T09:10:00Z"))
    report = run(lines)
    summary = report.summary()
    assert summary["alerts_in"] == 31 and summary["distinct_alerts"] == 3
    assert summary["incidents_opened"] == 1 and summary["noise_reduction"] == round(1 - 1 / 31, 4)
    [incident] = report.incidents.values()
    assert {labels["instance"] for labels in incident.members.values()} == {"i0", "i1", "i2"}


def test_lines_apply_in_event_time_whatever_the_file_order():
    forward = [line("firing", "a", "2026-03-01T09:00:00Z"), line("resolved", "a", "2026-03-01T09:05:00Z")]
    assert run(forward).summary()["incidents_opened"] == run(list(reversed(forward))).summary()["incidents_opened"] == 1
    assert run(list(reversed(forward))).summary()["per_policy"]["default"]["notifications"] == 2


def test_bad_lines_are_counted_and_skipped_with_their_line_number():
    report = run(["{nope", json.dumps({"labels": {}}), line("firing", "a", "2026-03-01T09:00:00Z")])
    assert [b.line for b in report.bad_lines] == [1, 2] and report.alerts_in == 1


def test_group_wait_runs_out_at_the_end_of_the_stream():
    policies = PolicySet(policies=(Policy(name="slow", group_by=("service",), group_wait=timedelta(minutes=5)),))
    report = run([line("firing", "a", "2026-03-01T09:00:00Z")], policies)
    assert report.summary()["incidents_opened"] == 1


def test_generated_storm_replays_from_the_command_line(tmp_path):
    storm = tmp_path / "storm.jsonl"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples/storm.py"),
            "--failures",
            "3",
            "--transients",
            "2",
            "--flappers",
            "1",
            "--hours",
            "1",
            "--out",
            str(storm),
        ],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [str(Path(sys.executable).parent / "firebreak"), "replay", "--json", str(storm)],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout)
    assert report["alerts_in"] == len(storm.read_text().splitlines()) and report["bad_lines"] == 0
    assert 0 < report["incidents_opened"] < report["distinct_alerts"] + 10
    assert all(incident["alerts"] for incident in report["incidents"])
    assert all(incident["probable_root"] for incident in report["incidents"])  # one service each, by default


def test_silences_and_changes_files_feed_replay(tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(
        line("firing", "a", "2026-03-01T09:00:00Z", service="db")
        + "\n"
        + line("firing", "a", "2026-03-01T09:00:00Z", service="web")
        + "\n"
    )
    silences = tmp_path / "silences.yaml"
    silences.write_text(
        "silences:\n  - {id: s1, matchers: ['service=\"db\"'], startsAt: '2026-03-01T08:00:00Z',\n"
        "     endsAt: '2026-03-01T10:00:00Z', createdBy: ops, comment: maintenance}\n"
    )
    changes = tmp_path / "changes.jsonl"
    changes.write_text(
        json.dumps({"id": "c1", "service": "web", "summary": "v2.3", "at": "2026-03-01T08:55:00Z"}) + "\n"
    )
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "firebreak"),
            "replay",
            "--json",
            "--silences",
            str(silences),
            "--changes",
            str(changes),
            str(alerts),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout)
    assert report["incidents_opened"] == 1 and report["dedup"] == {"suppressed": 1, "fired": 1}
    assert report["incidents"][0]["alerts"][0]["service"] == "web"


def test_transient_pause_holds_the_page_of_an_alert_that_usually_resolves_by_itself():
    """Three quick blips page (no history yet); the fourth waits and, resolved within the pause, pages nobody;
    the fifth waits and pages because it still fires; a critical alert with the same history is never held."""
    from correlation.policy import TransientPause
    from tests.factories import alert, at

    policy = Policy(
        name="blips",
        group_by=("alertname", "instance"),
        transient_pause=TransientPause(within=timedelta(minutes=5), share=0.8, min_history=3),
    )
    rules = Rules(PolicySet(policies=(policy,)))
    items = []
    for start, length in [(0, 60), (600, 90), (1200, 30), (1800, 120), (2400, None)]:
        items.append((at(start), alert("firing", starts=start, alertname="Blip", instance="a", severity="warning")))
        if length is not None:
            items.append(
                (
                    at(start + length),
                    alert(
                        "resolved",
                        starts=start,
                        ends=start + length,
                        alertname="Blip",
                        instance="a",
                        severity="warning",
                    ),
                )
            )
    report = replay(items, rules, report=Report(decisions=[]))
    counts = report.summary()["per_policy"]["blips"]
    assert counts["incidents"] == 5
    assert counts["pages"] == 4 and counts["pages_held_off"] == 1  # 3 before history + the one still firing
    held = [i for i in report.incidents.values() if i.opened_at >= at(1800)]
    assert len(held) == 2
    opened = [d for d in report.decisions if d.kind.value == "incident_opened" and "page_held_until" in d.detail]
    assert (
        len(opened) == 2
        and "in 3 of its last 3 firings" in opened[0].reason
        and "in 4 of its last 4" in opened[1].reason
    )

    critical = [(when, a.model_copy(update={"labels": {**a.labels, "severity": "critical"}})) for when, a in items]
    report = replay(critical, rules)
    assert report.summary()["per_policy"]["blips"]["pages"] == 5


def test_an_alert_that_is_no_blip_ends_the_transient_pause_and_pages_at_once():
    """A blip's fourth firing is held; a critical disk alert on the same host joins a minute in: the pause
    ends there (GRP-24), the page goes out, and the blip resolving inside the pause no longer counts as a
    page held off."""
    from correlation.policy import TransientPause
    from tests.factories import alert, at

    policy = Policy(
        name="hosts",
        group_by=("instance",),
        transient_pause=TransientPause(within=timedelta(minutes=5), share=0.8, min_history=3),
    )
    rules = Rules(PolicySet(policies=(policy,)))

    def blip(status: str, start: float, end: float | None = None):
        return alert(status, starts=start, ends=end, alertname="Blip", instance="db-1", severity="warning")

    items = []
    for start in (0, 600, 1200):
        items += [(at(start), blip("firing", start)), (at(start + 60), blip("resolved", start, start + 60))]
    items += [
        (at(1800), blip("firing", 1800)),
        (at(1860), alert("firing", starts=1860, alertname="DiskFailing", instance="db-1", severity="critical")),
        (at(1900), blip("resolved", 1800, 1900)),
    ]
    report = replay(items, rules, report=Report(decisions=[]))
    counts = report.summary()["per_policy"]["hosts"]
    assert counts["incidents"] == 4 and counts["pages"] == 4 and counts.get("pages_held_off", 0) == 0
    [ended] = [d for d in report.decisions if d.kind.value == "page_hold_ended"]
    assert ended.rule == "GRP-24" and ended.at == at(1860)
    assert "DiskFailing fires and does not usually resolve by itself" in ended.reason
    assert ended.fingerprint == items[-2][1].fingerprint
    from correlation.explain import incident_report

    pages = incident_report(ended.incident_id, [d for d in report.decisions if d.incident_id == ended.incident_id])[
        "pages"
    ]
    assert any("page_hold_ended" in p and "GRP-24" in p for p in pages)

    without = [item for item in items if item[1].labels["alertname"] == "Blip"]
    counts = replay(without, rules).summary()["per_policy"]["hosts"]
    assert counts["pages"] == 3 and counts["pages_held_off"] == 1


def test_with_an_escalation_config_replay_pages_levels_on_its_own_clock():
    """`replay --notifications`: the pager runs between the recorded alerts. An error that fires for 20 minutes
    pages level 1 (bob on call that week, and the chat channel) and, unacknowledged, level 2 (carol) 5 minutes
    later; one that clears within a minute pages level 1 only; a warning is routed to nobody."""
    from actions.loader import load_notifications
    from correlation.replay import suppression_of
    from correlation.virtual_pager import VirtualPager
    from tests.factories import alert, at

    config = load_notifications(ROOT / "examples" / "rules-as-code" / "notifications.yaml")
    rules = default_rules()

    def fires(service: str, start: float, end: float, severity: str = "error"):
        labels = {"alertname": "Down", "service": service, "severity": severity}
        return [
            (at(start), alert("firing", starts=start, **labels)),
            (at(end), alert("resolved", starts=start, ends=end, **labels)),
        ]

    items = sorted(
        [*fires("checkout", 0, 1200), *fires("search", 1800, 1860), *fires("docs", 2000, 2100, "warning")],
        key=lambda item: item[0],
    )
    report = Report(decisions=[])
    replay(
        items,
        rules,
        report=report,
        pager=lambda engine, state: VirtualPager(
            config, rules.topology, rules.service_label, suppression_of(engine, state), report.decisions
        ),
    )
    paging = report.summary()["paging"]
    assert paging == {
        "pages": 3,
        "by_level": {"1": 2, "2": 1},
        "by_recipient": {"bob": 2, "carol": 1, "chat": 2},
        "by_escalation_policy": {"payments": 3},
    }
    [level_2] = [p for p in report.paged if p.level == 2]
    assert level_2.at == at(300) and level_2.to == ["carol"]
    simulated = [d for d in report.decisions if d.kind.value == "paged"]
    assert [(d.at, d.detail["level"], d.detail["channel"]) for d in simulated if d.detail["level"] == "2"] == [
        (at(300), "2", "pager")
    ]
    assert any(d.kind.value == "not_paged" and "pages nobody" in d.reason for d in report.decisions)  # the warning

    # `--ack-after 3m`: people acknowledge 3 minutes after the first page, so level 2 (due at 5 minutes) never pages.
    acked = Report(decisions=[])
    replay(
        items,
        rules,
        report=acked,
        pager=lambda engine, state: VirtualPager(
            config,
            rules.topology,
            rules.service_label,
            suppression_of(engine, state),
            acked.decisions,
            ack_after=timedelta(minutes=3),
        ),
    )
    assert acked.summary()["paging"]["by_level"] == {"1": 2}
    [assumed] = [d for d in acked.decisions if d.kind.value == "not_paged" and "acknowledged" in d.reason]
    assert assumed.at == at(180) and "level 2 and later do not page" in assumed.reason
    assert "paging" not in run([line("firing", "a", "2026-03-01T09:00:00Z")]).summary()


def test_replay_takes_the_escalation_config_from_the_command_line(tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(
        json.dumps(
            {
                "labels": {"alertname": "Down", "service": "checkout", "severity": "critical"},
                "startsAt": "2026-03-01T09:00:00Z",
            }
        )
        + "\n"
    )
    notifications = ROOT / "examples" / "rules-as-code" / "notifications.yaml"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "firebreak"),
            "replay",
            "--notifications",
            str(notifications),
            "--explain",
            str(alerts),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (
        "escalation policy payments → page level 1 via pager: simulated → page level 1 via chat: simulated"
        in result.stdout
    )
    # Time runs on until no timer is left: nobody acknowledges the open incident, so level 2 pages 5 minutes on.
    assert "levels paged, by the escalation config (nobody acknowledging): 2 (each level" in result.stdout
    assert "by level: 1 → 1, 2 → 1" in result.stdout
    assert "by recipient:     bob 1, carol 1, chat 1" in result.stdout
    wrong = subprocess.run(
        [
            str(Path(sys.executable).parent / "firebreak"),
            "replay",
            "--notifications",
            str(notifications),
            "--ack-after",
            "5x",
            str(alerts),
        ],
        capture_output=True,
        text=True,
    )
    assert (
        wrong.returncode == 2
        and "'--ack-after': '5x' is not a duration; write it as 30s, 5m, 1h30m or 2d" in wrong.stderr
    )
