"""Running one step's action: rendering, the allow-lists, the timeout and the declared retries.

The executor (actions/executor.py) decides *whether* a step runs (claims, recovery, control flow); this
module decides *how*. `runbook test` uses it too, with `dry_run` to show what would run and execute nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from actions.command import CommandPolicy, CommandRefused, run_command
from actions.notify import Notifier, NotifyError, secret_value
from actions.outbound import OutboundHttp, Refused
from actions.templates import RenderError, render, render_data
from actions.urls import render_url
from adapters.secrets import SecretMissing, Secrets
from schemas.runbook import SecretRef, Step, StepStatus

# Failures no retry can fix: the runbook or the configuration must change.
PERMANENT = (Refused, CommandRefused, RenderError, SecretMissing)


@dataclass
class Outcome:
    status: StepStatus  # succeeded, failed or waiting
    output: Any = None
    error: str | None = None
    attempts: int = 1
    wake_at: datetime | None = None  # for waiting: when to look again
    refused: bool = False


class StepFailed(Exception):
    def __init__(self, message: str, output: Any = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.output = output
        self.retryable = retryable


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


def _header_value(value: str | SecretRef, ctx: dict[str, Any], secrets: Secrets | None) -> str:
    if isinstance(value, SecretRef):
        return secret_value(value, secrets) if secrets else f"<secret {value.secret}>"
    return render(value, ctx)


def _secs(duration: timedelta) -> str:
    return f"{duration.total_seconds():g}s"


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
    action = step.action
    if step.http is not None:
        spec = step.http
        url = f"<secret {spec.url.secret}>" if isinstance(spec.url, SecretRef) else render_url(spec.url, ctx)
        return {
            "http": {
                "method": spec.method,
                "url": url,
                "headers": {k: _header_value(v, ctx, None) for k, v in spec.headers.items()},
                "json": render_data(spec.json_body, ctx),
            }
        }
    if step.command is not None:
        spec_c = step.command
        return {
            "command": {
                "argv": [render(a, ctx) for a in spec_c.argv],
                "cwd": spec_c.cwd,
                "env": {k: render(v, ctx) for k, v in spec_c.env.items()},
            }
        }
    if step.notify is not None:
        return {"notify": {"channel": step.notify.channel, "message": render(step.notify.message, ctx)}}
    if step.approval is not None:
        return {
            "approval": {
                "prompt": render(step.approval.prompt, ctx),
                "timeout": _secs(step.approval.timeout),
                "default": step.approval.default,
            }
        }
    if step.wait is not None:
        return {"wait": {"for": _secs(step.wait.duration)} if step.wait.duration else {"until": step.wait.until}}
    if step.annotate is not None:
        return {"annotate": {"text": render(step.annotate.text, ctx)}}
    assert step.resolve_incident is not None
    return {action: {"comment": render(step.resolve_incident.comment, ctx)}}


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
        if step.wait is not None or step.approval is not None:
            return await self._parked(step, run_id=run_id, incident_id=incident_id, started_at=started_at, now=now)
        attempts = 1 + step.retries.attempts
        delay = step.retries.backoff.total_seconds()
        last: Outcome | None = None
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(step.timeout.total_seconds()):
                    output = await self._once(step, ctx, run_id=run_id, incident_id=incident_id, actor=actor)
                return Outcome(StepStatus.succeeded, self.s.secrets.scrub(output), attempts=attempt)
            except PERMANENT as exc:
                return Outcome(
                    StepStatus.failed,
                    None,
                    self.s.secrets.scrub(str(exc)),
                    attempts=attempt,
                    refused=isinstance(exc, (Refused, CommandRefused)),
                )
            except TimeoutError:
                last = Outcome(StepStatus.failed, None, f"timed out after {step.timeout.total_seconds():g}s", attempt)
            except StepFailed as exc:
                last = Outcome(
                    StepStatus.failed, self.s.secrets.scrub(exc.output), self.s.secrets.scrub(str(exc)), attempt
                )
                if not exc.retryable:
                    return last
            except NotifyError as exc:
                last = Outcome(StepStatus.failed, None, str(exc), attempt)
                if not exc.retryable:
                    return last
            except (aiohttp.ClientError, OSError) as exc:
                last = Outcome(StepStatus.failed, None, self.s.secrets.scrub(f"{type(exc).__name__}: {exc}"), attempt)
            if attempt < attempts:
                await self.s.sleep(min(delay, step.retries.max_backoff.total_seconds()))
                delay *= 2
        assert last is not None
        return last

    async def _once(self, step: Step, ctx: dict[str, Any], *, run_id: str, incident_id: str, actor: str) -> Any:
        if step.http is not None:
            return await self._http(step, ctx)
        if step.command is not None:
            return await self._command(step, ctx)
        if step.notify is not None:
            text = render(step.notify.message, ctx)
            return await self.s.notifier.send(
                step.notify.channel, text, ctx["incident"], f"{run_id}/{step.id}", timeout=step.timeout.total_seconds()
            )
        if step.annotate is not None:
            return {"text": render(step.annotate.text, ctx)}
        assert step.resolve_incident is not None
        comment = render(step.resolve_incident.comment, ctx)
        if self.s.resolve_incident is None:
            raise StepFailed("resolving incidents is not available here", retryable=False)
        await self.s.resolve_incident(incident_id, actor, comment)
        return {"resolved": incident_id, "comment": comment}

    async def _http(self, step: Step, ctx: dict[str, Any]) -> Any:
        spec = step.http
        assert spec is not None
        url = secret_value(spec.url, self.s.secrets) if isinstance(spec.url, SecretRef) else render_url(spec.url, ctx)
        headers = {k: _header_value(v, ctx, self.s.secrets) for k, v in spec.headers.items()}
        secret = frozenset(k for k, v in spec.headers.items() if isinstance(v, SecretRef))
        body = render_data(spec.json_body, ctx)
        started = time.monotonic()
        result = await self.s.http.request(
            spec.method, url, headers=headers, json=body, timeout=step.timeout.total_seconds(), secret_headers=secret
        )
        parsed = result.json()
        output = {
            "status": result.status,
            "body": parsed if parsed is not None else result.body,
            "truncated": result.truncated,
            "seconds": round(time.monotonic() - started, 3),
        }
        ok = result.status in spec.expect_status if spec.expect_status else 200 <= result.status < 300
        if not ok:
            retryable = result.status >= 500 or result.status in (408, 429)
            raise StepFailed(f"HTTP {result.status} from {result.url}", output, retryable)
        return output

    async def _command(self, step: Step, ctx: dict[str, Any]) -> Any:
        spec = step.command
        assert spec is not None
        program = self.s.commands.resolve(spec.argv[0])
        args = [render(a, ctx) for a in spec.argv[1:]]
        env = {k: render(v, ctx) for k, v in spec.env.items()}
        result = await run_command(
            program,
            args,
            env=env,
            cwd=render(spec.cwd, ctx) if spec.cwd else None,
            timeout=step.timeout.total_seconds() + 1,
            max_output_bytes=self.s.max_output_bytes,
        )
        output = {
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "truncated": result.truncated,
        }
        if result.timed_out:
            raise StepFailed(f"killed after {step.timeout.total_seconds():g}s", output)
        if result.exit_code != 0:
            raise StepFailed(f"exit code {result.exit_code}", output)
        return output

    async def _parked(
        self, step: Step, *, run_id: str, incident_id: str, started_at: datetime, now: datetime
    ) -> Outcome:
        if step.wait is not None and step.wait.duration is not None:
            until = started_at + step.wait.duration
            if now >= until:
                return Outcome(StepStatus.succeeded, {"waited_seconds": step.wait.duration.total_seconds()})
            return Outcome(StepStatus.waiting, wake_at=until)
        if step.wait is not None:  # until: resolved
            deadline = started_at + step.timeout
            status = await self.s.incident_status(incident_id) if self.s.incident_status else None
            if status == "resolved":
                return Outcome(StepStatus.succeeded, {"incident": "resolved"})
            if now >= deadline:
                return Outcome(StepStatus.failed, {"incident": status}, f"incident not resolved within {step.timeout}")
            return Outcome(StepStatus.waiting, wake_at=min(deadline, now + timedelta(seconds=2)))
        assert step.approval is not None
        deadline = started_at + step.approval.timeout
        decision = await self.s.approval(run_id, step.id) if self.s.approval else None
        if decision is None and now < deadline:
            return Outcome(StepStatus.waiting, wake_at=deadline)
        if decision is None:
            decision = {
                "decision": step.approval.default,
                "by": "timeout",
                "comment": f"no answer within {step.approval.timeout}",
            }
        if decision["decision"] == "approve":
            return Outcome(StepStatus.succeeded, decision)
        return Outcome(StepStatus.failed, decision, f"rejected by {decision['by']}")
