"""`command` steps: one allow-listed program, an argv list and never a shell (actions/command.py).

Output: `{exit_code, stdout, stderr, truncated}`. A non-zero exit code, or a kill at the timeout, fails the
attempt (retryable). Lint: the program off the allow-list; a templated argument with no `--` before it
(warning: a value starting with `-` would be read as an option).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actions.command import CommandRefused, run_command
from actions.steps.base import StepCall, StepFailed, StepKind, StepProblem
from actions.templates import is_template, render
from schemas.errors import Reason
from schemas.runbook import Param
from schemas.steps import CommandStep

if TYPE_CHECKING:
    from actions.lint import LintEnv


class Command(StepKind[CommandStep]):
    """Runs `command` steps."""

    step = CommandStep

    async def run(self, step: CommandStep, ctx: dict[str, Any], call: StepCall) -> Any:
        spec, s = step.command, call.services
        program = s.commands.resolve(spec.argv[0])
        args = [render(a, ctx) for a in spec.argv[1:]]
        env = {k: render(v, ctx) for k, v in spec.env.items()}
        result = await run_command(
            program,
            args,
            env=env,
            cwd=render(spec.cwd, ctx) if spec.cwd else None,
            timeout=step.timeout.total_seconds() + 1,
            max_output_bytes=s.max_output_bytes,
        )
        output = {
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "truncated": result.truncated,
        }
        if result.timed_out:
            raise StepFailed(f"killed after {step.timeout.total_seconds():g}s", output, reason=Reason.timeout)
        if result.exit_code != 0:
            raise StepFailed(f"exit code {result.exit_code}", output, reason=Reason.command_failed)
        return output

    def describe(self, step: CommandStep, ctx: dict[str, Any]) -> dict[str, Any]:
        spec = step.command
        return {
            "argv": [render(a, ctx) for a in spec.argv],
            "cwd": spec.cwd,
            "env": {k: render(v, ctx) for k, v in spec.env.items()},
        }

    def lint(self, step: CommandStep, env: LintEnv, params: dict[str, str | Param]) -> list[StepProblem]:
        argv = step.command.argv
        found = []
        try:
            env.commands.resolve(argv[0])
        except CommandRefused as exc:
            found.append(StepProblem(("command", "argv", 0), str(exc)))
        if "--" not in argv:
            for i, arg in enumerate(argv[1:], start=1):
                if is_template(arg) and arg.lstrip().startswith("{"):
                    found.append(
                        StepProblem(
                            ("command", "argv", i),
                            "a templated argument with no `--` before it: a value "
                            "starting with '-' would be read as an option; put `--` before positional "
                            "arguments",
                            "warning",
                        )
                    )
                    break
        return found
