"""`resolve_incident` steps: the incident resolved with a rendered comment, through the same command a person
sends (firebreak/worker.py). Output: `{resolved: <incident id>, comment}`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actions.steps.base import StepCall, StepFailed, StepKind, StepProblem
from actions.templates import render
from schemas.errors import Reason
from schemas.runbook import Param
from schemas.steps import ResolveStep

if TYPE_CHECKING:
    from actions.lint import LintEnv


class ResolveIncident(StepKind[ResolveStep]):
    """Runs `resolve_incident` steps (only in a worker: `runbook test` has nothing to resolve)."""

    step = ResolveStep
    runs_in_test = False

    async def run(self, step: ResolveStep, ctx: dict[str, Any], call: StepCall) -> Any:
        comment = render(step.resolve_incident.comment, ctx)
        if call.services.resolve_incident is None:
            raise StepFailed("resolving incidents is not available here", reason=Reason.config)
        await call.services.resolve_incident(call.incident_id, call.actor, comment)
        return {"resolved": call.incident_id, "comment": comment}

    def describe(self, step: ResolveStep, ctx: dict[str, Any]) -> dict[str, Any]:
        return {"comment": render(step.resolve_incident.comment, ctx)}

    def lint(self, step: ResolveStep, env: LintEnv, params: dict[str, str | Param]) -> list[StepProblem]:
        return []
