"""Every duration a user or sender writes is bounded where it is parsed (schemas/durations.py): a value
beyond 366 days, or written with non-ASCII digits, is refused with the field, option or file:line that gave
it, never an OverflowError later in the API, `check`, `replay` or the live worker's grouping."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from actions.loader import load_runbooks
from adapters.yamlfile import ConfigFileError, load_yaml_model
from correlation.policy import PolicySet
from firebreak.check import check
from firebreak.cli import main
from schemas.durations import MAX_DURATION, parse_duration

HUGE = ["99999999999999999999999d", "9999999999w", "9999999w", "367d", 10**30]


@pytest.mark.parametrize("value", HUGE)
def test_a_duration_longer_than_the_maximum_is_refused_naming_it(value):
    with pytest.raises(ValueError, match="longer than the maximum duration of 366 days"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("366d", MAX_DURATION), ("52w", timedelta(weeks=52)), ("0000000000000000090s", timedelta(seconds=90))],
)
def test_durations_up_to_the_maximum_are_read(value, expected):
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["٣h", "３m", "1h٣0m", float("nan"), float("inf"), timedelta(seconds=-1)])
def test_only_ascii_digits_and_finite_non_negative_values_are_durations(value):
    with pytest.raises(ValueError, match="not a duration|cannot be negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", ["99999999999999999999999d", "9999999w"])
def test_a_policy_file_with_an_endless_group_wait_names_the_file_and_line(tmp_path: Path, value: str):
    path = tmp_path / "policies.yaml"
    path.write_text(f"policies:\n  - name: p\n    match: ['a=\"b\"']\n    group_wait: {value}\n")
    with pytest.raises(ConfigFileError, match=rf"policies\.yaml:4: policies\.0\.group_wait: '{value}' is longer than"):
        load_yaml_model(path, PolicySet)


def test_a_runbook_with_an_endless_timeout_names_the_file_and_line(tmp_path: Path):
    (tmp_path / "r.yaml").write_text(
        "name: r\ndescription: d\nowner: o\non: [opened]\nsteps:\n"
        "  - id: a\n    timeout: 99999999999999999999999d\n    annotate: {text: x}\n"
    )
    with pytest.raises(ConfigFileError, match=r"r\.yaml:7: .*timeout: '99999999999999999999999d' is longer than"):
        load_runbooks(tmp_path)


def test_a_check_fixture_with_an_endless_time_is_a_failed_result_naming_the_line(tmp_path: Path):
    path = tmp_path / "t.firebreak.yaml"
    path.write_text(
        "name: t\nevents:\n  - {at: 0s, fire: {alertname: A}}\n  - {at: 99999999999999999999999d, resolve: {alertname: A}}\n"
        "expect: {}\n"
    )
    result = check(path)
    assert not result.passed and "t.firebreak.yaml:4: events.1.at:" in result.problems[0]
    assert "longer than the maximum duration of 366 days" in result.problems[0]


def _alerts(tmp_path: Path) -> Path:
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text(json.dumps({"labels": {"alertname": "Zq"}, "startsAt": "2026-03-01T09:00:00Z"}) + "\n")
    return alerts


def test_replay_refuses_an_endless_ack_after_naming_the_option(tmp_path: Path):
    result = CliRunner().invoke(main, ["replay", "--ack-after", "99999999999999999999d", str(_alerts(tmp_path))])
    assert result.exit_code == 2
    assert (
        "Invalid value for '--ack-after': '99999999999999999999d' is longer than the maximum duration" in result.output
    )


def test_replay_with_a_policy_of_a_long_group_wait_says_which_line(tmp_path: Path):
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  - name: p\n    group_by: [alertname]\n    group_wait: 9999999w\n")
    result = CliRunner().invoke(main, ["replay", "--policies", str(policies), str(_alerts(tmp_path))])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert (
        "policies.yaml:4: policies.0.group_wait: '9999999w' is longer than the maximum duration of 366 days"
        in result.output
    )


def test_silences_add_refuses_an_endless_for_before_calling_the_api():
    result = CliRunner().invoke(
        main,
        [
            "silences",
            "add",
            "--match",
            'alertname="Zq"',
            "--for",
            "99999999999999999999999d",
            "--author",
            "a",
            "--comment",
            "c",
            "--url",
            "http://127.0.0.1:9",
        ],
    )
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert (
        "Invalid value for '--for': '99999999999999999999999d' is longer than the maximum duration of 366 days"
        in result.output
    )


def test_a_check_fixture_starting_near_year_9999_is_a_failed_result_naming_the_line(tmp_path: Path):
    path = tmp_path / "late.firebreak.yaml"
    path.write_text(
        "name: late\nstart: 9999-12-31T23:00:00Z\nevents:\n  - {at: 0s, fire: {alertname: A}}\nexpect: {}\n"
    )
    result = check(path)
    assert (
        not result.passed
        and "late.firebreak.yaml:2: start: start must be from 1970 up to (not including) 9000" in result.problems[0]
    )
