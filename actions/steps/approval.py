"""`approval` steps: the run parks until a person decides (`firebreak runs approve|reject`) or the timeout
passes, when `default` decides. Output: `{decision, by, comment}`; a rejection fails the step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actions.steps.base import Outcome, StepCall, StepKind, StepProblem, seconds
from actions.templates import render
from schemas.errors import Reason
from schemas.runbook import Param, StepStatus
from schemas.steps import ApprovalStep

if TYPE_CHECKING:
    from actions.lint import LintEnv


class Approval(StepKind[ApprovalStep]):
    """Runs `approval` steps (parked: each visit looks for a decision)."""

    step = ApprovalStep
    runs_in_test = False

    async def run(self, step: ApprovalStep, ctx: dict[str, Any], call: StepCall) -> Outcome:
        deadline = call.started_at + step.approval.timeout
        decision = await call.services.approval(call.run_id, step.id) if call.services.approval else None
        if decision is None and call.now < deadline:
            return Outcome(StepStatus.waiting, wake_at=deadline)
        if decision is None:
            decision = {
                "decision": step.approval.default,
                "by": "timeout",
                "comment": f"no answer within {step.approval.timeout}",
            }
        if decision["decision"] == "approve":
            return Outcome(StepStatus.succeeded, decision)
        return Outcome(StepStatus.failed, decision, f"rejected by {decision['by']}", reason=Reason.rejected)

    def describe(self, step: ApprovalStep, ctx: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt": render(step.approval.prompt, ctx),
            "timeout": seconds(step.approval.timeout),
            "default": step.approval.default,
        }

    def lint(self, step: ApprovalStep, env: LintEnv, params: dict[str, str | Param]) -> list[StepProblem]:
        return []
