"""Rules as code: `firebreak check` and the pytest plugin over the worked example, and over fixtures that
must fail, with the reason they give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from firebreak.check import check, fixtures
from firebreak.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rules-as-code"


def fixture(tmp_path: Path, name: str, text: str) -> Path:
    """A fixture next to copies of the example's config, so its relative paths work."""
    for part in ("correlation.yaml", "notifications.yaml"):
        (tmp_path / part).write_text((EXAMPLE / part).read_text())
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "restart-checkout.yaml").write_text(
        (EXAMPLE / "runbooks" / "restart-checkout.yaml").read_text()
    )
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_worked_example_passes_through_the_cli():
    found = fixtures([EXAMPLE / "tests"])
    assert len(found) == 4
    result = CliRunner().invoke(main, ["check", str(EXAMPLE / "tests")])
    assert result.exit_code == 0, result.output
    assert "4 passed, 0 failed" in result.output


def test_the_checkout_storm_is_one_incident_one_page_and_one_run():
    result = check(EXAMPLE / "tests" / "checkout-latency.firebreak.yaml")
    assert result.passed, result.problems
    [incident] = result.outcome.incidents
    assert incident.alert_count == 3 and incident.acknowledged_by == "alice"
    assert [(p.level, p.to) for p in result.outcome.pages] == [(1, ["alice", "chat"])]
    assert result.outcome.runs[0].steps[-1] == "scale_out"  # `when: incident.alert_count >= 3` held


def test_an_unmet_expectation_fails_and_says_what_happened_instead(tmp_path):
    path = fixture(
        tmp_path,
        "wrong.firebreak.yaml",
        """
name: expects a page that a warning never makes
policies: correlation.yaml
notifications: notifications.yaml
events:
  - {at: 0s, fire: {alertname: DiskFilling, service: search, severity: warning}}
  - {at: 1m, fire: {alertname: HighLatency, service: checkout, instance: a, severity: critical}}
expect:
  incidents:
    - {title: DiskFilling on search}
  pages:
    - {incident: 1, level: 1, to: [alice, chat]}
""",
    )
    result = check(path)
    assert not result.passed
    assert result.problems[0].startswith("incidents: expected 1, got 2: 'DiskFilling on search' triggered")
    assert (
        "pages[1].incident: expected 1, got 2 (incident 2 level 1 via payments to alice, chat at 90s)"
        in result.problems
    )
    cli = CliRunner().invoke(main, ["check", str(path)])
    assert cli.exit_code == 1 and "FAIL" in cli.output and "0 passed, 1 failed" in cli.output


def test_a_broken_fixture_names_the_file_and_line(tmp_path):
    path = fixture(
        tmp_path,
        "broken.firebreak.yaml",
        """
name: broken
policies: correlation.yaml
events:
  - {at: 0s, fire: {alertname: A}, resolve: {alertname: A}}
expect: {}
""",
    )
    result = check(path)
    assert not result.passed and "broken.firebreak.yaml:5" in result.problems[0]
    assert "exactly one of fire, resolve" in result.problems[0]


def test_a_command_for_an_incident_that_never_opened_is_a_clear_failure(tmp_path):
    path = fixture(
        tmp_path,
        "early.firebreak.yaml",
        """
name: acks too early
policies: correlation.yaml
events:
  - {at: 0s, ack: {incident: 1, by: ana}}
expect: {}
""",
    )
    assert check(path).problems == ["event at 0:00:00 names incident 1, but only 0 opened by then"]


def test_the_pytest_plugin_collects_fixtures_and_reports_failures(tmp_path):
    fixture(
        tmp_path,
        "fails.firebreak.yaml",
        """
name: a page nobody gets
policies: correlation.yaml
notifications: notifications.yaml
events:
  - {at: 0s, fire: {alertname: DiskFilling, service: search, severity: warning}}
expect:
  pages:
    - {incident: 1, level: 1}
""",
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 4 passed" in run.stdout, run.stdout
    assert (
        "pages: expected 1, got 0: none" in run.stdout and "incident 1: 'DiskFilling on search' triggered" in run.stdout
    )


def test_an_inhibited_incident_holds_its_next_level_as_the_pager_does(tmp_path):
    """The mute `firebreak check` applies is the pager's own (correlation/escalation.py `muted_by`): silences and
    inhibitions both. A cluster going down after checkout paged level 1 inhibits checkout's alert, so level 2
    (carol, due at 5m30s) waits until the cluster alert resolves at 20m."""
    fixture(tmp_path, "ignored.yaml", "")
    (tmp_path / "correlation.yaml").write_text(
        (EXAMPLE / "correlation.yaml").read_text()
        + """
inhibit_rules:
  - name: cluster-down
    source_matchers: ['alertname="ClusterDown"']
    target_matchers: ['alertname!="ClusterDown"']
    equal: [cluster]
"""
    )
    path = tmp_path / "inhibited.firebreak.yaml"
    path.write_text("""
name: a cluster outage holds checkout's level 2 until it ends
policies: correlation.yaml
notifications: notifications.yaml
start: 2026-03-09T10:00:00Z
run_for: 30m
events:
  - {at: 0s, fire: {alertname: PaymentsDown, service: checkout, cluster: eu, severity: error}}
  - {at: 2m, fire: {alertname: ClusterDown, cluster: eu, severity: critical}}
  - {at: 20m, resolve: {alertname: ClusterDown, cluster: eu, severity: critical}}
expect:
  pages:
    - {incident: 1, level: 1, to: [bob, chat], at: 30s}
    - {incident: 2, level: 1, to: [bob, chat], at: 2m}
    - {incident: 2, level: 2, to: [carol], at: 7m}
    - {incident: 1, level: 2, to: [carol], at: 20m}
""")
    result = check(path)
    assert result.passed, result.problems


def test_a_fixture_merges_and_splits_incidents_as_the_api_would(tmp_path):
    (tmp_path / "by-service.yaml").write_text("policies:\n  - {name: svc, group_by: [service], group_window: 1m}\n")
    path = tmp_path / "regroup.firebreak.yaml"
    path.write_text("""
name: two incidents of one outage are merged, then one alert split off
policies: by-service.yaml
events:
  - {at: 0s, fire: {alertname: Errors, service: web, instance: a}}
  - {at: 2m, fire: {alertname: Errors, service: web, instance: b}}
  - {at: 3m, merge: {incident: 2, into: 1, by: ana}}
  - {at: 4m, fire: {alertname: Errors, service: web, instance: b}}
  - {at: 5m, split: {incident: 1, alerts: [{alertname: Errors, service: web, instance: b}], by: bo}}
expect:
  incidents:
    - {alerts: 1, firing: 1, status: triggered}
    - {alerts: 0, status: resolved, merged_into: 1}
    - {alerts: 1, firing: 1, status: triggered, split_from: 1}
""")
    result = check(path)
    assert result.passed, result.problems
    first, merged, split_off = result.outcome.incidents
    assert merged.merged_into == first.id and split_off.split_from == first.id


def test_a_merge_or_split_the_stage_would_refuse_fails_the_fixture_with_the_reason(tmp_path):
    (tmp_path / "by-service.yaml").write_text("policies:\n  - {name: svc, group_by: [service], group_window: 1m}\n")
    head = """
name: refused
policies: by-service.yaml
events:
  - {at: 0s, fire: {alertname: Errors, service: web, instance: a}}
  - {at: 1s, fire: {alertname: Errors, service: api, instance: a}}
"""
    cases = {
        "  - {at: 2m, merge: {incident: 1, into: 1, by: ana}}": "merge refused: cannot merge",
        "  - {at: 2m, merge: {incident: 2, into: 1, by: ana}}": "merge refused: inc-",  # another correlation key
        "  - {at: 2m, split: {incident: 1, alerts: [{alertname: Errors, service: web, instance: a}], by: ana}}": "split refused: every alert of",
        "  - {at: 2m, split: {incident: 1, alerts: [{alertname: Errors, service: web, instance: zz}], by: ana}}": "split names alerts incident 1 does not hold",
    }
    for n, (line, message) in enumerate(cases.items()):
        path = tmp_path / f"refused-{n}.firebreak.yaml"
        path.write_text(head + line + "\nexpect: {}\n")
        problems = check(path).problems
        assert len(problems) == 1 and message in problems[0], (line, problems)


def test_a_fixture_expecting_a_merge_that_did_not_happen_fails(tmp_path):
    (tmp_path / "by-service.yaml").write_text("policies:\n  - {name: svc, group_by: [service], group_window: 1m}\n")
    path = tmp_path / "no-merge.firebreak.yaml"
    path.write_text("""
name: expects a merge nobody made
policies: by-service.yaml
events:
  - {at: 0s, fire: {alertname: Errors, service: web, instance: a}}
  - {at: 2m, fire: {alertname: Errors, service: web, instance: b}}
expect:
  incidents:
    - {alerts: 1}
    - {merged_into: 1}
""")
    problems = check(path).problems
    assert problems and "incidents[2].merged_into: expected 1, got None" in problems[0]
