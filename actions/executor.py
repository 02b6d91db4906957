"""The runbook executor: starts runs for incident events, drives each run step by step, at most once per step.

How a step runs at most once, across crashes and rebalances (keys in adapters/run_store.py):
1. An executor takes a due run with a lease (set-if-absent, expiring) and a new fence (a counter). It
   renews the lease while it works; a dead executor's lease runs out and another takes the run.
2. Before a step runs, its claim record is written `started` (fenced, set-if-absent). After it ran, the
   result overwrites it. Every write carries the fence: an executor that lost its lease cannot write.
3. The next holder finds each step's claim: a result is reused (the step is not run again); `started`
   without a result means the outcome was lost. The step is then reported `unknown` and handled by its
   `on_failure`, unless it is `idempotent: true` (or a wait or approval, which change nothing), when it
   runs again.

Runs park on approval and wait steps (the lease is released and the run is scheduled for later), so a
worker restart or an approval arriving hours later resumes it where it stopped. Nothing here runs inside a
stream agent: the agent only creates runs (actions/matching.py decides which), this loop runs them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from redis.exceptions import RedisError

from correlation.topology import Topology
from adapters.metrics import (
    ACTIONS_REFUSED,
    EXECUTOR_ERRORS,
    GUARDRAIL_BLOCKS,
    RUNS_CREATED,
    RUNS_FINISHED,
    STEP_DURATION,
    STEPS_FINISHED,
)
from adapters.logs import context as log_context
from adapters.readmodel import IncidentStore
from schemas import Incident, IncidentEvent
from schemas.runbook import (
    ActionResult,
    OnFailure,
    ResultKind,
    Run,
    Runbook,
    RunStatus,
    Step,
    StepRecord,
    StepStatus,
    Trigger,
)

from actions.guardrails import Guard
from actions.loop import PollLoop
from actions.matching import context, render_params, run_id, triggered
from actions.runner import Outcome, Runner
from adapters.run_store import Fenced, RunStore
from actions.templates import RenderError, evaluate, render

log = logging.getLogger("firebreak.actions")

Publish = Callable[[ActionResult], Awaitable[None]]
Audit = Callable[[str, dict[str, str], str | None, str], Awaitable[None]]  # (action, target, actor, detail)
MISSING_INCIDENT_LIMIT = timedelta(minutes=10)
ALERTS_GRACE = timedelta(seconds=10)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Executor(PollLoop):
    name = "executor"

    def __init__(self, runbooks: list[Runbook], store: RunStore, incidents: IncidentStore, runner: Runner, publish: Publish,
                 *, topology: Topology, service_label: str, page_channel: str | None, lease_seconds: float = 30.0,
                 concurrency: int = 8, poll_seconds: float = 0.5, owner: str | None = None, guard: Guard | None = None,
                 audit: Audit | None = None) -> None:
        self.runbooks = {r.name: r for r in runbooks}
        self.store = store
        self.incidents = incidents
        self.runner = runner
        self.publish = publish
        self.topology = topology
        self.service_label = service_label
        self.page_channel = page_channel
        self.lease_seconds = lease_seconds
        self.concurrency = concurrency
        super().__init__(poll_seconds)
        self.owner = owner or f"executor-{uuid.uuid4().hex[:12]}"
        self.guard = guard
        self.audit = audit

    # -- creating runs (called from the stream agent, after the read model took the event) ---------------

    async def trigger(self, event: IncidentEvent, incident: Incident, trigger: Trigger | None = None) -> list[str]:
        """Create a run for each runbook this event triggers; idempotent for a redelivered event."""
        created = []
        for runbook in triggered(self.runbooks.values(), event, incident, self.topology, self.service_label, trigger):
            rid = run_id(incident.id, runbook.name, event.event_id)
            now = _now()
            run = Run(id=rid, runbook=runbook.name, incident_id=incident.id, trigger=trigger or Trigger(event.kind.value),
                      trigger_event_id=event.event_id, created_at=now, updated_at=now)
            if await self.store.create(run):
                RUNS_CREATED.labels(runbook.name).inc()
                created.append(rid)
                self.wake.set()
                await self._result(run, ResultKind.run_created, output={"trigger": run.trigger.value})
        return created

    # -- the loop ---------------------------------------------------------------------------------------

    def redis_failed(self, exc: RedisError) -> None:
        EXECUTOR_ERRORS.labels("redis").inc()
        log.warning("executor cannot reach Redis (%s): no step runs until it is back", exc)

    async def poll(self) -> int:
        """Start driving the due runs this executor can take; returns how many it took."""
        if self.stopping or await self.store.paused():
            return 0
        taken = 0
        room = self.concurrency - len(self.tasks)
        for rid in await self.store.due(_now(), limit=max(room, 0) + len(self.tasks)):
            if rid in self.tasks or len(self.tasks) >= self.concurrency:
                continue
            fence = await self.store.lease(rid, self.owner, self.lease_seconds)
            if fence is None:
                continue
            self.tasks[rid] = asyncio.create_task(self._drive(rid, fence), name=f"run {rid}")
            taken += 1
        return taken

    async def shutdown(self, grace_seconds: float) -> None:
        """Steps in hand get the grace period, so a deploy does not leave them unknown."""
        await super().shutdown(grace_seconds)
        await self.runner.s.http.close()

    async def _drive(self, rid: str, fence: int) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(rid))
        try:
            await self._advance(rid, fence)
        except Fenced as exc:
            log.warning("%s; another executor has it", exc)
        except RedisError as exc:
            EXECUTOR_ERRORS.labels("redis").inc()
            log.warning("run %s stopped: Redis failed (%s); it resumes when the lease expires", rid, exc)
        except Exception:  # noqa: BLE001 - a bug in one run must not stop the others; look again later
            EXECUTOR_ERRORS.labels("bug").inc()
            log.exception("run %s failed unexpectedly; looking at it again in 30 s", rid)
            try:
                await self.store.schedule(rid, _now() + timedelta(seconds=30))
            except RedisError:
                pass
        finally:
            heartbeat.cancel()
            try:
                await self.store.release(rid, self.owner)
            except RedisError:
                pass  # it expires
            self.tasks.pop(rid, None)

    async def _heartbeat(self, rid: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.store.renew(rid, self.owner, self.lease_seconds):
                    log.error("lost the lease of run %s", rid)
                    return
            except RedisError as exc:
                log.warning("could not renew the lease of run %s (%s)", rid, exc)

    # -- one run ----------------------------------------------------------------------------------------

    async def _advance(self, rid: str, fence: int) -> None:
        run = await self.store.get(rid)
        if run is None or run.status.finished:
            await self.store.unschedule(rid)
            return
        run = run.model_copy(update={"fence": fence})
        runbook = self.runbooks.get(run.runbook)
        if runbook is None:
            await self._finish(run, fence, RunStatus.failed, f"runbook {run.runbook!r} is no longer loaded")
            return
        incident = await self.incidents.get(run.incident_id)
        if incident is None:
            if _now() - run.created_at > MISSING_INCIDENT_LIMIT:
                await self._finish(run, fence, RunStatus.failed, f"incident {run.incident_id} is not in the read model; "
                                   "run `firebreak readmodel rebuild` and start the runbook again")
            else:
                await self.store.schedule(rid, _now() + timedelta(seconds=1))  # the read model has not caught up yet
            return
        if run.status is RunStatus.pending and not incident.alerts and _now() - run.created_at < ALERTS_GRACE:
            # An incident opens one event before its first alert joins it: let the read model catch up so
            # params see the alert (an `opened` run is created as soon as the incident exists).
            await self.store.schedule(rid, _now() + timedelta(seconds=0.2))
            return
        if run.status is RunStatus.pending:
            if not await self.store.take_slot(runbook.name, rid, runbook.concurrency):
                await self.store.schedule(rid, _now() + timedelta(seconds=1))
                return
            try:
                params = render_params(runbook, context(incident, self.topology, self.service_label, run))
            except RenderError as exc:
                await self._finish(run, fence, RunStatus.failed, str(exc))
                return
            run = run.model_copy(update={"params": params})
            blocked = await self._blocked(run, runbook, incident)
            if blocked is not None:
                await self._finish(run, fence, RunStatus.failed, blocked, blocked=True)
                return
            run = run.model_copy(update={"status": RunStatus.running, "updated_at": _now()})
            await self.store.save(run, fence)
            await self._result(run, ResultKind.run_started, output={"params": params})

        while run.position < len(runbook.steps):
            if await self.store.paused():
                await self.store.schedule(rid, _now() + timedelta(seconds=self.poll_seconds))
                return
            step = runbook.steps[run.position]
            record = await self._step(run, runbook, step, fence)
            run = run.model_copy(update={"steps": {**run.steps, step.id: record}, "updated_at": _now()})
            if record.status is StepStatus.waiting:
                run = run.model_copy(update={"status": RunStatus.waiting})
                await self.store.save(run, fence)
                await self.store.schedule(rid, record.deadline or _now())
                return
            if record.status in (StepStatus.failed, StepStatus.unknown) and step.on_failure is not OnFailure.continue_:
                if step.on_failure is OnFailure.page:
                    await self._page(run, runbook, incident, f"Runbook {runbook.name} (owner {runbook.owner}) needs a human: "
                                     f"step {step.id} {record.status.value} for incident {incident.id} ({incident.title}): "
                                     f"{record.error}", f"{run.id}/{step.id}/page")
                final = RunStatus.unknown if record.status is StepStatus.unknown else RunStatus.failed
                await self._finish(run, fence, final, f"step {step.id} {record.status.value}: {record.error}")
                return
            run = run.model_copy(update={"position": run.position + 1, "status": RunStatus.running})
            await self.store.save(run, fence)
        await self._finish(run, fence, RunStatus.succeeded, None)

    async def _blocked(self, run: Run, runbook: Runbook, incident: Incident) -> str | None:
        """Why the runbook's guardrails keep this run from starting, or None. A blocked run pages a human with
        the reason: the remediation did not happen and someone must decide."""
        rails = runbook.guardrails
        if rails is None or self.guard is None:
            return None
        try:
            target = render(rails.target, context(incident, self.topology, self.service_label, run)).strip() or incident.id
        except RenderError as exc:
            return f"guardrails target: {exc}"
        decision = await self.guard.admit(runbook.name, rails, run.id, target[:500], _now())
        if decision.allowed:
            return None
        GUARDRAIL_BLOCKS.labels(runbook.name, decision.guardrail).inc()
        reason = f"guardrail {decision.guardrail}: {decision.reason}"
        await self._result(run, ResultKind.run_blocked, output={"guardrail": decision.guardrail, "target": target,
                                                                 "reason": decision.reason})
        await self._page(run, runbook, incident, f"Runbook {runbook.name} (owner {runbook.owner}) did not run for incident "
                         f"{incident.id} ({incident.title}): {reason}. Remediate by hand or raise the limit.", f"{run.id}/blocked")
        return reason

    async def _step(self, run: Run, runbook: Runbook, step: Step, fence: int) -> StepRecord:
        """The step's record after this visit: finished, or waiting with the time to look again."""
        now = _now()
        found = await self.store.step_record(run.id, step.id)
        if found is not None and found.status.finished:
            return found  # it ran under an earlier holder; its result stands
        incident = await self.incidents.get(run.incident_id)
        assert incident is not None
        ctx = context(incident, self.topology, self.service_label, run)
        if found is None:
            if step.when is not None:
                try:
                    wanted = evaluate(step.when, ctx)
                except RenderError as exc:
                    return await self._record(run, step, fence, StepRecord(
                        status=StepStatus.failed, action=step.action, fence=fence, started_at=now, finished_at=now,
                        error=f"when: {exc}"), ResultKind.step_failed)
                if not wanted:
                    return await self._record(run, step, fence, StepRecord(
                        status=StepStatus.skipped, action=step.action, fence=fence, started_at=now, finished_at=now),
                        ResultKind.step_skipped)
            started = StepRecord(status=StepStatus.started, action=step.action, fence=fence, started_at=now, attempts=1)
            existing = await self.store.claim_step(run.id, step.id, fence, started)
            if existing is not None:  # claimed between our read and now: treat as found below
                found = existing
            else:
                await self._result(run, ResultKind.step_started, step, attempt=1)
                return await self._execute(run, runbook, step, fence, started, ctx)
        assert found is not None
        if found.status is StepStatus.waiting or (found.status is StepStatus.started and step.rerunnable):
            resumed = found.model_copy(update={"fence": fence, "attempts": found.attempts + (found.status is StepStatus.started)})
            return await self._execute(run, runbook, step, fence, resumed, ctx)
        # started under an earlier holder that stopped: the outcome is unknown, and running it again is not safe
        unknown = found.model_copy(update={
            "status": StepStatus.unknown, "finished_at": now, "fence": fence,
            "error": "the executor running this step stopped before recording its outcome; check its effect by hand "
                     "(declare the step `idempotent: true` if running it again is safe)"})
        return await self._record(run, step, fence, unknown, ResultKind.step_unknown)

    async def _gate(self, run: Run, runbook: Runbook, step: Step, fence: int, record: StepRecord) -> tuple[StepRecord, bool]:
        """A `risk: high` step runs only once enough different people approved it: (its record, whether to run
        it now). The record waits, or failed on a refusal or expiry, or is started and names who approved.
        Each outcome goes to the audit log; the request itself pages the runbook's page channel."""
        gate = step.gate
        assert gate is not None and record.started_at is not None
        votes = await self.store.votes(run.id, step.id)
        approvers = list(dict.fromkeys(v["by"] for v in votes if v["decision"] == "approve"))
        rejected = next((v for v in votes if v["decision"] == "reject"), None)
        target = {"run_id": run.id, "incident_id": run.incident_id, "runbook": runbook.name, "step": step.id}
        now = _now()
        deadline = record.started_at + gate.expires
        if rejected is not None or (len(approvers) < gate.required and now >= deadline):
            why = (f"rejected by {rejected['by']}" + (f": {rejected['comment']}" if rejected.get("comment") else "")
                   if rejected else f"approval expired after {gate.expires} with {len(approvers)} of {gate.required} "
                                    f"approvals ({', '.join(approvers) or 'none'}); a high-risk step never runs by default")
            await self._audit("risk gate refused", target, rejected["by"] if rejected else None, why)
            await self._result(run, ResultKind.approval_decided, step, output={"decision": "reject", "by": rejected["by"]
                               if rejected else "timeout", "approvers": approvers}, actor=rejected["by"] if rejected else "firebreak")
            return await self._record(run, step, fence, record.model_copy(update={
                "status": StepStatus.failed, "finished_at": now, "error": f"high-risk step not run: {why}"}),
                ResultKind.step_failed), False
        if len(approvers) >= gate.required:
            await self._audit("risk gate approved", target, ", ".join(approvers),
                              f"{len(approvers)} of {gate.required} approvals: {', '.join(approvers)}")
            await self._result(run, ResultKind.approval_decided, step, output={"decision": "approve", "by": ", ".join(approvers),
                               "approvers": approvers}, actor=", ".join(approvers))
            started = record.model_copy(update={"status": StepStatus.started, "approved_by": approvers, "deadline": None})
            return await self._record(run, step, fence, started, ResultKind.step_started), True  # a crash from here: `unknown`
        waiting = record.model_copy(update={"status": StepStatus.waiting, "deadline": deadline})
        if record.status is not StepStatus.waiting:
            incident = await self.incidents.get(run.incident_id)
            if incident is not None:
                await self._page(run, runbook, incident,
                                 f"Runbook {runbook.name} step {step.id} is high-risk and waits for approval by {gate.required} "
                                 f"{'people' if gate.required > 1 else 'person'} until {deadline.isoformat()}: "
                                 f"firebreak runs approve {run.id} --actor NAME (or reject)", f"{run.id}/{step.id}/gate")
            await self._audit("risk gate requested", target, None,
                              f"needs {gate.required} approval(s) from different people before {deadline.isoformat()}")
            return await self._record(run, step, fence, waiting, ResultKind.approval_requested), False
        return waiting, False  # one of two approvals so far, or none yet: the audit log has each decision

    async def _audit(self, action: str, target: dict[str, str], actor: str | None, detail: str) -> None:
        if self.audit is not None:
            await self.audit(action, target, actor, detail)

    async def _execute(self, run: Run, runbook: Runbook, step: Step, fence: int, record: StepRecord,
                       ctx: dict[str, Any]) -> StepRecord:
        assert record.started_at is not None
        if step.gate is not None and not record.approved_by:
            record, approved = await self._gate(run, runbook, step, fence, record)
            if not approved:
                return record
        outcome: Outcome = await self.runner.run(step, ctx, run_id=run.id, incident_id=run.incident_id,
                                                 actor=f"runbook:{runbook.name}", started_at=record.started_at, now=_now())
        if outcome.refused:
            ACTIONS_REFUSED.labels(step.action).inc()
        if outcome.status is StepStatus.waiting:
            waiting = record.model_copy(update={"status": StepStatus.waiting, "deadline": outcome.wake_at})
            if record.status is not StepStatus.waiting:
                return await self._record(run, step, fence, waiting, ResultKind.step_waiting)
            return waiting
        finished = record.model_copy(update={
            "status": outcome.status, "finished_at": _now(), "output": outcome.output, "error": outcome.error,
            # attempts add up across holders: a re-run after a crash counts the lost attempt too
            "attempts": record.attempts - 1 + outcome.attempts if step.action not in ("wait", "approval") else record.attempts})
        kind = ResultKind.step_succeeded if outcome.status is StepStatus.succeeded else ResultKind.step_failed
        if step.action == "approval" and isinstance(outcome.output, dict):
            await self._result(run, ResultKind.approval_decided, step, output=outcome.output, actor=str(outcome.output.get("by")))
        if step.action == "annotate" and outcome.status is StepStatus.succeeded:
            await self._result(run, ResultKind.annotation, step, output=outcome.output)
        return await self._record(run, step, fence, finished, kind)

    async def _record(self, run: Run, step: Step, fence: int, record: StepRecord, kind: ResultKind) -> StepRecord:
        updated = run.model_copy(update={"steps": {**run.steps, step.id: record}, "updated_at": _now()})
        await self.store.save(updated, fence, **{step.id: record})
        if record.status.finished:
            STEPS_FINISHED.labels(step.action, record.status.value).inc()
        duration = None
        if record.finished_at and record.started_at:
            duration = (record.finished_at - record.started_at).total_seconds() * 1000
            if record.status.finished and record.status is not StepStatus.skipped:
                STEP_DURATION.labels(step.action).observe(duration / 1000)
        await self._result(updated, kind, step, attempt=record.attempts, output=record.output, error=record.error,
                           duration_ms=duration)
        return record

    async def _finish(self, run: Run, fence: int, status: RunStatus, error: str | None, blocked: bool = False) -> None:
        run = run.model_copy(update={"status": status, "error": error, "updated_at": _now()})
        await self.store.save(run, fence)
        await self.store.unschedule(run.id)
        await self.store.free_slot(run.runbook, run.id)
        runbook = self.runbooks.get(run.runbook)
        if self.guard is not None and runbook is not None and runbook.guardrails is not None and not blocked:
            await self.guard.outcome(runbook.name, runbook.guardrails, run.id, status is RunStatus.succeeded, _now())
        RUNS_FINISHED.labels(run.runbook, status.value).inc()
        kind = {RunStatus.succeeded: ResultKind.run_succeeded, RunStatus.unknown: ResultKind.run_unknown}.get(status, ResultKind.run_failed)
        await self._result(run, kind, error=error)
        log.info("run %s of %s for %s: %s%s", run.id, run.runbook, run.incident_id, status.value, f" ({error})" if error else "",
                 extra=log_context(incident_id=run.incident_id, run_id=run.id, runbook=run.runbook))

    async def _page(self, run: Run, runbook: Runbook, incident: Incident, text: str, key: str) -> None:
        channel = runbook.page_channel or self.page_channel
        if channel is None:
            log.error("%s; no page channel is configured (set FIREBREAK_PAGE_CHANNEL)", text)
            return
        try:
            ctx = context(incident, self.topology, self.service_label, run)
            await self.runner.s.notifier.send(channel, text, ctx["incident"], key)
        except Exception as exc:  # noqa: BLE001 - best effort: a failed page must not keep the run from finishing
            log.error("could not page %s about run %s: %s", channel, run.id, exc,
                      extra=log_context(incident_id=run.incident_id, run_id=run.id, runbook=run.runbook, channel=channel))

    async def _result(self, run: Run, kind: ResultKind, step: Step | None = None, *, attempt: int = 0, output: Any = None,
                      error: str | None = None, duration_ms: float | None = None, actor: str = "firebreak") -> None:
        step_part = f"/{step.id}" if step else ""
        result = ActionResult(
            result_id=f"{run.id}{step_part}/{kind.value}/{run.fence}/{attempt}", kind=kind, run_id=run.id,
            runbook=run.runbook, incident_id=run.incident_id, step_id=step.id if step else None,
            action=step.action if step else None, attempt=attempt, at=_now(), actor=actor, output=output,
            error=error, duration_ms=duration_ms)
        await self.publish(result)
