"""Running one step's action: rendering, the allow-lists, the timeout and the declared retries.

The executor (actions/executor.py) decides *whether* a step runs (claims, recovery, control flow); this
module decides *how*. `runbook test` uses it too, with `dry_run` to show what would run and execute nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from actions.command import CommandPolicy
from actions.notify import Notifier
from actions.outbound import OutboundHttp
from actions.steps.base import Outcome, StepCall, StepFailed
from actions.steps.registry import kind_of
from adapters.secrets import Secrets
from schemas.errors import ActionError, Reason
from schemas.runbook import Step, StepStatus

__all__ = ["Outcome", "Placeholder", "Runner", "Services", "StepFailed", "describe"]


@dataclass
class Services:
    """What actions reach: each a real client, or None where a caller (e.g. `runbook test`) has none."""

    http: OutboundHttp
    commands: CommandPolicy
    secrets: Secrets
    notifier: Notifier
    max_output_bytes: int = 64 * 1024
    resolve_incident: Callable[[str, str, str], Awaitable[None]] | None = None  # (incident id, actor, comment)
    incident_status: Callable[[str], Awaitable[str | None]] | None = None
    approval: Callable[[str, str], Awaitable[dict[str, Any] | None]] | None = None  # (run id, step id) -> decision
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


class Placeholder:
    """Stands in for a step output a dry run does not have: any attribute, item or call gives another
    placeholder, and it renders as the path it stands for."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> Placeholder:
        if name.startswith("_"):
            raise AttributeError(name)
        return Placeholder(f"{self._path}.{name}")

    def __getitem__(self, key: object) -> Placeholder:
        return Placeholder(f"{self._path}[{key!r}]")

    def __call__(self, *args: object, **kwargs: object) -> Placeholder:
        return Placeholder(f"{self._path}()")

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(())

    def __len__(self) -> int:
        return 0

    def __str__(self) -> str:
        return f"<{self._path}>"


def describe(step: Step, ctx: dict[str, Any]) -> dict[str, Any]:
    """The step's action as it would run, rendered, with secrets shown by name: what a dry run prints."""
    return {step.action: kind_of(step).describe(step, ctx)}


class Runner:
    def __init__(self, services: Services) -> None:
        self.s = services

    async def run(
        self,
        step: Step,
        ctx: dict[str, Any],
        *,
        run_id: str,
        incident_id: str,
        actor: str,
        started_at: datetime,
        now: datetime,
    ) -> Outcome:
        """One step, start to finish (or to its next wake-up for wait/approval); never raises for a step failure."""
        kind = kind_of(step)
        call = StepCall(self.s, run_id, incident_id, actor, started_at, now)
        if step.parks:
            parked: Outcome = await kind.run(step, ctx, call)
            return parked
        attempts = 1 + step.retries.attempts
        delay = step.retries.backoff.total_seconds()
        last: Outcome | None = None
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(step.timeout.total_seconds()):
                    output = await kind.run(step, ctx, call)
                return Outcome(StepStatus.succeeded, self.s.secrets.scrub(output), attempts=attempt)
            except ActionError as exc:  # StepFailed, NotifyError, Refused, CommandRefused, RenderError, SecretMissing
                output = exc.output if isinstance(exc, StepFailed) else None
                last = Outcome(
                    StepStatus.failed,
                    self.s.secrets.scrub(output),
                    self.s.secrets.scrub(str(exc)),
                    attempt,
                    reason=exc.reason,
                )
                if not exc.reason.retryable:
                    return last
            except TimeoutError:
                last = Outcome(
                    StepStatus.failed,
                    None,
                    f"timed out after {step.timeout.total_seconds():g}s",
                    attempt,
                    reason=Reason.timeout,
                )
            except (aiohttp.ClientError, OSError) as exc:
                last = Outcome(
                    StepStatus.failed,
                    None,
                    self.s.secrets.scrub(f"{type(exc).__name__}: {exc}"),
                    attempt,
                    reason=Reason.connection,
                )
            if attempt < attempts:
                await self.s.sleep(min(delay, step.retries.max_backoff.total_seconds()))
                delay *= 2
        assert last is not None
        return last
