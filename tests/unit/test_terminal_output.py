"""What senders and users wrote reaches the operator's terminal escaped: the CLI commands run here with
hostile labels, titles, actors, comments, outputs and audit entries, their data sources stubbed (no services)."""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

import click
import pytest
from click.testing import CliRunner

import firebreak.cli as cli
import firebreak.cli_runbooks as cli_runbooks
from firebreak.terminal import escape
from schemas import Incident
from schemas.incident import IncidentAlert, IncidentEventKind, IncidentStatus, TimelineEntry
from schemas.runbook import ActionResult, ResultKind

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
# Set the window title, clear the screen, fake a line, CSI as one C1 byte, reverse the text, DEL.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\r\nFAKE LINE\x9b31m\u202egnp.exe\x7f"
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def assert_safe(output: str) -> None:
    bad = [c for c in output if (unicodedata.category(c) == "Cc" and c != "\n") or c in BIDI]
    assert not bad, f"raw control characters reach the terminal: {bad!r}"
    assert "FAKE LINE" not in [line.strip() for line in output.splitlines()]


def test_escape_shows_every_control_as_a_visible_escape():
    assert escape(HOSTILE) == "\\x1b]0;pwned\\x07\\x1b[2J\\r\\nFAKE LINE\\x9b31m\\u202egnp.exe\\x7f"
    assert escape("checkout-api é ✓") == "checkout-api é ✓"


def hostile_incident() -> Incident:
    alert = IncidentAlert(
        fingerprint="f1",
        status="firing",
        labels={"service": HOSTILE, HOSTILE: "x"},
        annotations={"summary": HOSTILE},
        starts_at=NOW,
    )
    entry = TimelineEntry(seq=1, at=NOW, kind=IncidentEventKind.acknowledged, actor=HOSTILE, detail=HOSTILE)
    return Incident(
        id="inc-1",
        correlation_key="k",
        group_labels={},
        status=IncidentStatus.acknowledged,
        title=HOSTILE,
        severity=HOSTILE,
        opened_at=NOW,
        updated_at=NOW,
        acknowledged_at=NOW,
        acknowledged_by=HOSTILE,
        seq=2,
        alerts={"f1": alert},
        timeline=[entry],
    )


def invoke(*args: str) -> click.testing.Result:
    result = CliRunner().invoke(cli.main, list(args), env={"FIREBREAK_CONFIG": ""})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("as_json", [False, True])
def test_incidents_show_escapes_labels_titles_actors_and_step_outputs(monkeypatch: pytest.MonkeyPatch, as_json: bool):
    result = ActionResult(
        result_id="r1",
        kind=ResultKind.step_failed,
        run_id="run-1",
        runbook="rb",
        incident_id="inc-1",
        step_id="s",
        at=NOW,
        error=HOSTILE,
        output={"text": HOSTILE},
    )
    answers: list[Any] = [hostile_incident(), [result], []]
    monkeypatch.setattr(cli, "_read", lambda ctx, action: answers.pop(0))
    shown = invoke("incidents", "show", "inc-1", *(["--json"] if as_json else []))
    assert shown.exit_code == 0, shown.output
    assert_safe(shown.output)
    if as_json:
        assert json.loads(shown.output)["title"] == HOSTILE  # escaped for the terminal, yet the same data
    else:
        assert "\\x1b]0;pwned" in shown.output and "\\u202egnp.exe" in shown.output


def test_incidents_show_prints_each_alerts_latest_annotations_and_generator_url_escaped(
    monkeypatch: pytest.MonkeyPatch,
):
    incident = hostile_incident()
    alert = incident.alerts["f1"].model_copy(
        update={
            "annotations": {"summary": "disk 91% full", "description": HOSTILE},
            "generator_url": "http://prometheus:9090/graph?g0.expr=disk%3E0.9\x1b[2J",
        }
    )
    answers: list[Any] = [incident.model_copy(update={"alerts": {"f1": alert}}), [], []]
    monkeypatch.setattr(cli, "_read", lambda ctx, action: answers.pop(0))
    shown = invoke("incidents", "show", "inc-1")
    assert shown.exit_code == 0, shown.output
    assert_safe(shown.output)
    lines = [line.strip() for line in shown.output.splitlines()]
    assert "summary: disk 91% full" in lines
    assert f"description: {escape(HOSTILE)}" in lines
    assert "generatorURL: http://prometheus:9090/graph?g0.expr=disk%3E0.9\\x1b[2J" in lines


def test_incidents_list_escapes_titles(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli, "_read", lambda ctx, action: [hostile_incident()])
    shown = invoke("incidents", "list")
    assert shown.exit_code == 0 and "\\x1b[2J" in shown.output
    assert_safe(shown.output)


API_ANSWERS = {
    ("audit",): {
        "entries": [
            {
                "at": "2026-03-01T09:00:00Z",
                "status": 200,
                "principal": HOSTILE,
                "actor": HOSTILE,
                "action": HOSTILE,
                "target": {"incident": HOSTILE},
                "detail": HOSTILE,
            }
        ]
    },
    ("audit", "--refused"): {
        "entries": [],
        "unauthenticated": [
            {
                "at": "2026-03-01T09:00:00Z",
                "status": 403,
                "principal": "link",
                "actor": HOSTILE,
                "action": "POST /l/ack",
                "target": {"incident": HOSTILE},
                "detail": HOSTILE,
            }
        ],
    },
    ("silences", "list"): {
        "silences": [
            {
                "id": "s1",
                "startsAt": "a",
                "endsAt": "b",
                "createdBy": HOSTILE,
                "matchers": [f'service="{HOSTILE}"'],
                "comment": HOSTILE,
            }
        ]
    },
    ("runs", "list"): {
        "runs": [
            {
                "id": "run-1",
                "status": "failed",
                "runbook": "rb",
                "incident_id": "inc-1",
                "trigger": "opened",
                "steps": {},
                "created_at": "t",
                "error": HOSTILE,
            }
        ]
    },
    ("runs", "show", "run-1"): {
        "id": "run-1",
        "status": "failed",
        "runbook": "rb",
        "incident_id": "inc-1",
        "trigger": "opened",
        "error": HOSTILE,
        "params": {"service": HOSTILE},
        "steps": {
            "s": {"status": "failed", "action": "http", "attempts": 1, "error": HOSTILE, "output": {"body": HOSTILE}}
        },
    },
}


@pytest.mark.parametrize("args", list(API_ANSWERS))
def test_api_backed_commands_escape_what_they_print(monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]):
    for module in (cli, cli_runbooks):
        monkeypatch.setattr(module, "_api", lambda *a, **kw: API_ANSWERS[args])
    for extra in ([], ["--json"]) if args[0] != "silences" else ([],):  # silences list has no --json
        shown = invoke(*args, *extra)
        assert shown.exit_code == 0, shown.output
        assert_safe(shown.output)
        assert ("\\x1b" if not extra else "\\u001b") in shown.output


class _Answer:
    status_code = 409
    headers = {"Content-Type": "application/json"}
    text = ""

    def json(self) -> dict[str, str]:
        return {"message": HOSTILE}


def test_an_error_message_quoting_an_api_answer_is_escaped(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("requests.request", lambda *a, **kw: _Answer())
    shown = invoke("audit")
    assert shown.exit_code == 1 and "409: \\x1b]0;pwned\\x07\\x1b[2J\\r\\nFAKE LINE" in shown.output
    assert_safe(shown.output)


def test_any_error_message_is_escaped_line_by_line(monkeypatch: pytest.MonkeyPatch):
    def refuse(ctx: Any, action: Any) -> Any:
        raise click.ClickException(f"first\nno incident {HOSTILE}")

    monkeypatch.setattr(cli, "_read", refuse)
    shown = invoke("incidents", "show", "x")
    assert shown.exit_code == 1 and "no incident \\x1b]0;pwned" in shown.output
    assert_safe(shown.output)


class _Refusal(_Answer):
    status_code = 422

    def json(self) -> dict[str, Any]:
        return {
            "message": "1 of the alerts named are not in inc-1",
            "problems": [{"field": "alerts[0]", "problem": f"0000 is not an alert of inc-1 {HOSTILE}"}],
        }


def test_an_api_refusal_shows_each_problem_with_its_field_and_fix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("requests.request", lambda *a, **kw: _Refusal())
    shown = invoke("audit")
    assert shown.exit_code == 1 and "422: 1 of the alerts named are not in inc-1" in shown.output
    assert "alerts[0]: 0000 is not an alert of inc-1" in shown.output
    assert_safe(shown.output)
