"""Step kinds: one module per action, chosen by which action key a step has; the YAML is as it always was.
Every kind runs, describes and lints; the runner, dry runs and lint find the kind through one registry."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from actions.command import CommandPolicy
from actions.lint import LintEnv, lint
from actions.outbound import AllowList
from actions.runner import Runner, describe
from actions.steps.base import StepCall, StepKind, StepProblem
from actions.steps.registry import STEPS
from adapters.secrets import Secrets
from adapters.yamlfile import ConfigFileError, load_yaml_model
from schemas.runbook import Runbook, StepStatus
from schemas.steps import ACTION_FIELDS, KINDS, STEP, AnnotateStep, HttpStep, Step, WaitStep
from tests.unit.test_actions import services

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ONE_OF = f"a step has exactly one action of {', '.join(ACTION_FIELDS)}"


def test_the_registry_and_the_runbook_format_know_the_same_kinds():
    # The seven kinds there were before kinds had modules keep their order (the message lists them in it).
    assert ACTION_FIELDS[:7] == ("http", "command", "notify", "approval", "wait", "annotate", "resolve_incident")
    assert set(STEPS) == set(ACTION_FIELDS), "a kind needs its model in schemas/steps and its line in registry.py"
    for action, kind in STEPS.items():
        assert kind.step.action == action and kind.step in KINDS and action in kind.step.model_fields


@pytest.mark.parametrize("action", sorted(STEPS))
def test_every_kind_runs_describes_and_lints(action: str):
    kind = STEPS[action]
    assert isinstance(kind, StepKind) and not inspect.isabstract(type(kind))
    assert inspect.iscoroutinefunction(kind.run) and callable(kind.describe) and callable(kind.lint)
    assert (type(kind).__doc__ or "").strip() and (inspect.getmodule(type(kind)).__doc__ or "").strip()


# (the step as written, the kind it is, or the one error it gets: "location: message")
STEPS_AS_WRITTEN: list[tuple[dict[str, Any], type[Step] | str]] = [
    ({"id": "a", "http": {"url": "https://api.internal/x"}}, HttpStep),
    ({"id": "a", "wait": {"for": "5s"}, "retries": {"attempts": 1}}, WaitStep),
    ({"id": "a", "annotate": {"text": "x"}, "http": None, "wait": None}, AnnotateStep),  # null keys are absent keys
    ({"id": "a"}, f": {ONE_OF}; step 'a' has none"),
    ({"id": "a", "annotate": {"text": "x"}, "wait": {"for": "5s"}}, f": {ONE_OF}; step 'a' has wait, annotate"),
    ({"id": "a", "http": {"url": "ftp://x"}}, "http.url: 'ftp://x' is not an http(s) URL with a host"),
    ({"id": "a", "http": "x"}, "http: Input should be a valid dictionary or instance of HttpAction"),
    (
        {"id": "a", "wait": {"for": "1s"}, "risk": "high"},
        ": step 'a': a wait step changes nothing, so it cannot be `risk: high`",
    ),
    (
        {"id": "a", "command": {"argv": ["true"]}, "approvals": {"required": 2}},
        ": step 'a': `approvals` applies to `risk: high` steps; add `risk: high` or drop it",
    ),
    ({"id": "a", "annotate": {"text": "x"}, "bogus": 1}, "bogus: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("written", "expected"), STEPS_AS_WRITTEN)
def test_the_action_key_picks_the_kind_and_errors_read_as_before(written: dict[str, Any], expected: type[Step] | str):
    if isinstance(expected, type):
        step = Step.model_validate(written)
        assert type(step) is expected and step.action == expected.action
        assert type(STEP.validate_python(written)) is expected
        return
    with pytest.raises(ValidationError) as info:
        Step.model_validate(written)
    (error,) = info.value.errors(include_url=False)
    assert f"{'.'.join(map(str, error['loc']))}: {error['msg'].removeprefix('Value error, ')}" == expected


def test_errors_keep_their_locations_and_the_order_of_one_model(tmp_path: Path):
    (tmp_path / "r.yaml").write_text("""name: r
description: d
owner: o
on: [opened]
steps:
  - timeout: x
    command: {argv: []}
    when: 5
    id: 3
  - 42
""")
    with pytest.raises(ConfigFileError) as info:
        load_yaml_model(tmp_path / "r.yaml", Runbook)
    assert [line.split(": ", 1)[1].split(":")[0] for line in str(info.value).splitlines()] == [
        "steps.0.id",
        "steps.0.command.argv",
        "steps.0.when",
        "steps.0.timeout",
        "steps.1",
    ]
    assert str(info.value).endswith("steps.1: Input should be a valid dictionary or instance of Step")


class StandIn(StepKind[AnnotateStep]):
    """Records what the runner, dry runs and lint ask of the `annotate` kind."""

    step = AnnotateStep

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def run(self, step: AnnotateStep, ctx: dict[str, Any], call: StepCall) -> Any:
        self.calls.append(f"run {step.id} {call.run_id}")
        return {"stood_in": True}

    def describe(self, step: AnnotateStep, ctx: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(f"describe {step.id}")
        return {"shown": step.annotate.text}

    def lint(self, step: AnnotateStep, env: Any, params: Any) -> list[StepProblem]:
        self.calls.append(f"lint {step.id}")
        return [StepProblem(("annotate", "text"), "stand-in problem", "warning")]


def test_the_runner_dry_runs_and_lint_dispatch_through_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    stand_in = StandIn()
    monkeypatch.setitem(STEPS, "annotate", stand_in)
    step = Step.model_validate({"id": "note", "annotate": {"text": "hello"}})
    svc = services([])
    outcome = asyncio.run(
        Runner(svc).run(step, {}, run_id="run-1", incident_id="inc-1", actor="runbook:t", started_at=NOW, now=NOW)
    )
    assert outcome.status is StepStatus.succeeded and outcome.output == {"stood_in": True}
    assert describe(step, {}) == {"annotate": {"shown": "hello"}}
    (tmp_path / "r.yaml").write_text(
        "name: r\ndescription: d\nowner: o\non: [opened]\nsteps:\n  - id: note\n    annotate: {text: hello}\n"
    )
    env = LintEnv(AllowList.parse([]), CommandPolicy.parse([]), Secrets(None, {}), frozenset())
    assert [str(f).split(": ", 1)[1] for f in lint([tmp_path], env)] == ["warning: stand-in problem"]
    assert stand_in.calls == ["run note run-1", "describe note", "lint note"]
