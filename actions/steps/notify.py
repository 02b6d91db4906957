"""`notify` steps: the rendered message on a channel of the notifications file (actions/channels/), one attempt
per try, with the dedup key `<run id>/<step id>`. Output: `{channel, dedup_key, ...what the channel returns}`.
Lint: a channel the notifications file lacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actions.steps.base import StepCall, StepKind, StepProblem
from actions.templates import render
from schemas.runbook import Param
from schemas.steps import NotifyStep

if TYPE_CHECKING:
    from actions.lint import LintEnv


class Notify(StepKind[NotifyStep]):
    """Runs `notify` steps."""

    step = NotifyStep

    async def run(self, step: NotifyStep, ctx: dict[str, Any], call: StepCall) -> Any:
        text = render(step.notify.message, ctx)
        return await call.services.notifier.send(
            step.notify.channel, text, ctx["incident"], f"{call.run_id}/{step.id}", timeout=step.timeout.total_seconds()
        )

    def describe(self, step: NotifyStep, ctx: dict[str, Any]) -> dict[str, Any]:
        return {"channel": step.notify.channel, "message": render(step.notify.message, ctx)}

    def lint(self, step: NotifyStep, env: LintEnv, params: dict[str, str | Param]) -> list[StepProblem]:
        if step.notify.channel in env.channels:
            return []
        return [
            StepProblem(
                ("notify", "channel"),
                f"channel {step.notify.channel!r} is not in the notifications file (the notifications_file setting, "
                "FIREBREAK_NOTIFICATIONS_FILE); add it there or fix the name",
            )
        ]
