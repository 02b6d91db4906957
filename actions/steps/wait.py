"""`wait` steps: the run parks for `for: <duration>` from the step's start, or until the incident resolves
(`until: resolved`, failing at the step's timeout). Output: `{waited_seconds}` or `{incident: resolved}`."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from actions.steps.base import Outcome, StepCall, StepKind, StepProblem, seconds
from schemas.errors import Reason
from schemas.runbook import Param, StepStatus
from schemas.steps import WaitStep

if TYPE_CHECKING:
    from actions.lint import LintEnv


class Wait(StepKind[WaitStep]):
    """Runs `wait` steps (parked: each visit compares the time with the deadline)."""

    step = WaitStep
    runs_in_test = False

    async def run(self, step: WaitStep, ctx: dict[str, Any], call: StepCall) -> Outcome:
        if step.wait.duration is not None:
            until = call.started_at + step.wait.duration
            if call.now >= until:
                return Outcome(StepStatus.succeeded, {"waited_seconds": step.wait.duration.total_seconds()})
            return Outcome(StepStatus.waiting, wake_at=until)
        deadline = call.started_at + step.timeout  # until: resolved
        incident_status = call.services.incident_status
        status = await incident_status(call.incident_id) if incident_status else None
        if status == "resolved":
            return Outcome(StepStatus.succeeded, {"incident": "resolved"})
        if call.now >= deadline:
            return Outcome(
                StepStatus.failed,
                {"incident": status},
                f"incident not resolved within {step.timeout}",
                reason=Reason.timeout,
            )
        return Outcome(StepStatus.waiting, wake_at=min(deadline, call.now + timedelta(seconds=2)))

    def describe(self, step: WaitStep, ctx: dict[str, Any]) -> dict[str, Any]:
        return {"for": seconds(step.wait.duration)} if step.wait.duration else {"until": step.wait.until}

    def lint(self, step: WaitStep, env: LintEnv, params: dict[str, str | Param]) -> list[StepProblem]:
        return []
