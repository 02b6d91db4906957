"""`annotate` steps: a rendered note on the incident's timeline. Output: `{text}`; the executor publishes it
as an `annotation` action result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actions.steps.base import StepCall, StepKind, StepProblem
from actions.templates import render
from schemas.runbook import Param
from schemas.steps import AnnotateStep

if TYPE_CHECKING:
    from actions.lint import LintEnv


class Annotate(StepKind[AnnotateStep]):
    """Runs `annotate` steps."""

    step = AnnotateStep

    async def run(self, step: AnnotateStep, ctx: dict[str, Any], call: StepCall) -> Any:
        return {"text": render(step.annotate.text, ctx)}

    def describe(self, step: AnnotateStep, ctx: dict[str, Any]) -> dict[str, Any]:
        return {"text": render(step.annotate.text, ctx)}

    def lint(self, step: AnnotateStep, env: LintEnv, params: dict[str, str | Param]) -> list[StepProblem]:
        return []
