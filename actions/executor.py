"""The runbook executor: starts runs for incident events, drives each run step by step, at most once per step.

Each visit of a run is: lease, load, call the run core (correlation/runs.py, rules RUN-n) with what happened,
act on what it says (Redis, the runner, pages, results), feed the answer back, until the core ends the visit.
The decisions (`when`, claims found after a crash, risk gates, parking, `on_failure`, the end of a run) are
the core's; `firebreak check` and `firebreak runbook test` run the same core on a virtual clock
(correlation/run_simulation.py).

How a step runs at most once, across crashes and rebalances (keys in adapters/run_store.py):
1. An executor takes a due run with a lease (set-if-absent, expiring) and a new fence (a counter). It
   renews the lease while it works; a dead executor's lease runs out and another takes the run.
2. Before a step runs, its claim record is written `started` (fenced, set-if-absent: the core's `Claim`).
   After it ran, the result overwrites it. Every write carries the fence: an executor that lost its lease
   cannot write. The claim is the last Redis command before the call: what the step's templates need is
   read before it, so a Redis failure cannot strand a claim whose call was never made. A claim sent again
   by the client (the first answer was lost) finds its own identical record and is still the holder's.
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from redis.exceptions import RedisError

from actions.guardrails import Guard
from actions.loop import PollLoop
from actions.matching import context, render_params, run_id, triggered
from actions.runner import Outcome, Runner
from actions.templates import RenderError, evaluate, render
from adapters.logs import context as log_context
from adapters.metrics import (
    ACTIONS_REFUSED,
    EXECUTOR_ERRORS,
    GUARDRAIL_BLOCKS,
    RUNS_CREATED,
    RUNS_FINISHED,
    STEP_DURATION,
    STEPS_FINISHED,
)
from adapters.readmodel import IncidentStore
from adapters.redis_errors import until_redis_answers
from adapters.run_store import Fenced, RunStore
from correlation import runs
from correlation.topology import Topology
from schemas import Incident, IncidentEvent
from schemas.runbook import ActionResult, ResultKind, Run, Runbook, RunStatus, Step, StepRecord, StepStatus, Trigger

log = logging.getLogger("firebreak.actions")

T = TypeVar("T")
Publish = Callable[[ActionResult], Awaitable[None]]
Audit = Callable[[str, dict[str, str], str | None, str], Awaitable[None]]  # (action, target, actor, detail)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Visit:
    """One holder's visit of one run: the run as the core returned it last, and what was loaded for it."""

    run: Run
    runbook: Runbook | None
    incident: Incident | None
    # (step id, what its templates see): read when the core looks at the step, before its claim, so that
    # nothing but the claim touches Redis between "this step is started" and its call (see _act).
    context: tuple[str, dict[str, Any]] | None = None

    @property
    def book(self) -> Runbook:
        assert self.runbook is not None  # the core asks nothing of a run whose runbook is gone but to finish it
        return self.runbook


class Executor(PollLoop):
    name = "executor"

    def __init__(
        self,
        runbooks: list[Runbook],
        store: RunStore,
        incidents: IncidentStore,
        runner: Runner,
        publish: Publish,
        *,
        topology: Topology,
        service_label: str,
        page_channel: str | None,
        lease_seconds: float = 30.0,
        concurrency: int = 8,
        poll_seconds: float = 0.5,
        owner: str | None = None,
        guard: Guard | None = None,
        audit: Audit | None = None,
    ) -> None:
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
            run = Run(
                id=rid,
                runbook=runbook.name,
                incident_id=incident.id,
                trigger=trigger or Trigger(event.kind.value),
                trigger_event_id=event.event_id,
                created_at=now,
                updated_at=now,
            )
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
        heartbeat = asyncio.create_task(self._heartbeat(rid, fence))
        try:
            await self._advance(rid, fence)
        except Fenced as exc:
            log.warning("%s; another executor has it", exc)
        except RedisError as exc:
            EXECUTOR_ERRORS.labels("redis").inc()
            log.warning(
                "run %s stopped: Redis failed (%s); it is taken up again once Redis answers and its lease is free",
                rid,
                exc,
            )
        except Exception:
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

    async def _heartbeat(self, rid: str, fence: int) -> None:
        """Hold the run while this visit drives it; a lease that lapsed while Redis was away is taken back
        unless another executor took the run (then this visit's next write is fenced off)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await self.store.renew(rid, self.owner, self.lease_seconds, fence):
                    log.error("run %s was taken over by another executor; this visit stops at its next write", rid)
                    return
            except RedisError as exc:
                log.warning("could not renew the lease of run %s (%s)", rid, exc)

    # -- one run: load, call the core (correlation/runs.py), act on what it says ----------------------------

    async def _advance(self, rid: str, fence: int) -> None:
        found = await self.store.get(rid)
        if found is None:
            await self.store.unschedule(rid)
            return
        visit = _Visit(
            found.model_copy(update={"fence": fence}),
            self.runbooks.get(found.runbook),
            await self.incidents.get(found.incident_id),
        )
        event: runs.Event | None = runs.Due(
            incident=visit.incident is not None, alerts=bool(visit.incident is not None and visit.incident.alerts)
        )
        while event is not None:
            visit.run, outputs = runs.apply(visit.run, visit.runbook, event, _now())
            event = None
            for out in outputs:
                event = await self._act(visit, out) or event

    async def _act(self, visit: _Visit, out: runs.Output) -> runs.Event | None:
        """Carry out one output of the core; a request's answer is the next event."""
        run, fence = visit.run, visit.run.fence
        if isinstance(out, runs.Save):
            await self.store.save(out.run, fence)
        elif isinstance(out, runs.Record):
            await self._record(visit, out)
        elif isinstance(out, runs.Publish):
            await self._result(
                run,
                out.kind,
                self._step(visit, out.step_id),
                attempt=out.attempt,
                output=out.output,
                error=out.error,
                actor=out.actor,
            )
        elif isinstance(out, runs.Page):
            incident = visit.incident
            if incident is not None:
                await self._page(run, visit.book, incident, out.text(incident.id, incident.title), out.key)
        elif isinstance(out, runs.Audit):
            await self._audit(
                out.action,
                {"run_id": run.id, "incident_id": run.incident_id, "runbook": run.runbook, "step": out.step_id},
                out.actor,
                out.detail,
            )
        elif isinstance(out, runs.TakeSlot):
            return runs.SlotTaken(await self.store.take_slot(visit.book.name, run.id, visit.book.concurrency))
        elif isinstance(out, runs.RenderParams):
            try:
                return runs.ParamsRendered(render_params(visit.book, self._context(visit, run)))
            except RenderError as exc:
                return runs.ParamsRendered(error=str(exc))
        elif isinstance(out, runs.CheckGuardrails):
            return await self._guardrails(visit)
        elif isinstance(out, runs.LookAtStep):
            if await self.store.paused():
                return runs.StepLooked(out.step_id, paused=True)
            found = await self.store.step_record(run.id, out.step_id)
            visit.context = (out.step_id, await self._read_context(visit, out.step_id))
            return runs.StepLooked(out.step_id, found=found)
        elif isinstance(out, runs.AskWhen):
            step = self._step(visit, out.step_id)
            assert step is not None and step.when is not None
            try:
                return runs.WhenAnswered(out.step_id, evaluate(step.when, await self._step_context(visit, out.step_id)))
            except RenderError as exc:
                return runs.WhenAnswered(out.step_id, error=str(exc))
        elif isinstance(out, runs.Claim):
            # A claim that timed out may still be written when Redis wakes up; sent until it answers, it finds
            # itself (the same bytes) rather than leaving a `started` claim whose call this holder never made.
            async def claim() -> StepRecord | None:
                return await self.store.claim_step(
                    run.id, out.step_id, fence, out.record, owner=self.owner, lease_seconds=self.lease_seconds
                )

            return runs.Claimed(
                out.step_id, await self._until_redis_answers(run, f"the claim of step {out.step_id}", claim)
            )
        elif isinstance(out, runs.CountVotes):
            return runs.VotesCounted(out.step_id, await self.store.votes(run.id, out.step_id))
        elif isinstance(out, runs.ExecuteStep):
            return await self._execute(visit, out)
        elif isinstance(out, (runs.Park, runs.Retry)):
            at = out.until if isinstance(out, runs.Park) else out.at
            await self.store.schedule(run.id, at or _now() + timedelta(seconds=self.poll_seconds))
        elif isinstance(out, runs.Finish):
            await self._finish(visit, out)
        elif isinstance(out, runs.Forget):
            await self.store.forget(run.id, run.runbook)
        return None

    @staticmethod
    def _step(visit: _Visit, step_id: str | None) -> Step | None:
        return runs.step_of(visit.book, step_id) if visit.runbook is not None else None

    def _context(self, visit: _Visit, run: Run) -> dict[str, Any]:
        assert visit.incident is not None
        return context(visit.incident, self.topology, self.service_label, run)

    async def _step_context(self, visit: _Visit, step_id: str) -> dict[str, Any]:
        """What the step's templates see: the incident as it was when the core looked at the step (one read
        per step and visit), the steps before it.

        The read happens before the step's claim. A Redis failure after the claim and before the call would
        leave the claim `started` with no call made, and the next holder would have to report a step that
        never ran as `unknown` (RUN-20): so between the claim and the call nothing reads Redis."""
        if visit.context is not None and visit.context[0] == step_id:
            return visit.context[1]
        return await self._read_context(visit, step_id)

    async def _read_context(self, visit: _Visit, step_id: str) -> dict[str, Any]:
        visit.incident = await self.incidents.get(visit.run.incident_id)
        return self._context(visit, runs.before(visit.run, step_id))

    async def _guardrails(self, visit: _Visit) -> runs.GuardrailsChecked:
        """Whether the runbook's guardrails let this run start. A blocked run pages a human with the reason (the
        core says so): the remediation did not happen and someone must decide."""
        rails, run, incident = visit.book.guardrails, visit.run, visit.incident
        if rails is None or self.guard is None:
            return runs.GuardrailsChecked(True)
        assert incident is not None
        try:
            target = render(rails.target, self._context(visit, run)).strip() or incident.id
        except RenderError as exc:
            return runs.GuardrailsChecked(False, error=str(exc))
        decision = await self.guard.admit(visit.book.name, rails, run.id, target[:500], _now())
        if not decision.allowed:
            GUARDRAIL_BLOCKS.labels(visit.book.name, decision.guardrail).inc()
        return runs.GuardrailsChecked(decision.allowed, decision.guardrail, decision.reason, target)

    async def _execute(self, visit: _Visit, request: runs.ExecuteStep) -> runs.StepRan:
        step = self._step(visit, request.step_id)
        assert step is not None
        ctx = await self._step_context(visit, step.id)
        outcome: Outcome = await self.runner.run(
            step,
            ctx,
            run_id=visit.run.id,
            incident_id=visit.run.incident_id,
            actor=f"runbook:{visit.book.name}",
            started_at=request.started_at,
            now=_now(),
        )
        if outcome.refused:
            ACTIONS_REFUSED.labels(step.action).inc()
        return runs.StepRan(step.id, outcome.status, outcome.output, outcome.error, outcome.attempts, outcome.wake_at)

    async def _audit(self, action: str, target: dict[str, str], actor: str | None, detail: str) -> None:
        if self.audit is not None:
            await self.audit(action, target, actor, detail)

    async def _record(self, visit: _Visit, out: runs.Record) -> None:
        record, run = out.record, out.run
        step = self._step(visit, out.step_id)
        assert step is not None
        await self._keep(run, step.id, record)
        if record.status.finished:
            STEPS_FINISHED.labels(step.action, record.status.value).inc()
        duration = None
        if record.finished_at and record.started_at:
            duration = (record.finished_at - record.started_at).total_seconds() * 1000
            if record.status.finished and record.status is not StepStatus.skipped:
                STEP_DURATION.labels(step.action).observe(duration / 1000)
        await self._result(
            run, out.kind, step, attempt=record.attempts, output=record.output, error=record.error, duration_ms=duration
        )

    async def _keep(self, run: Run, step_id: str, record: StepRecord) -> None:
        """Write a step's record. It may be the only copy of a step's outcome (the call was made, its answer
        is here): given up on, the next holder would find the claim `started` and report a step that ran as
        `unknown`. So it waits Redis out (`_until_redis_answers`)."""

        async def save() -> None:
            await self.store.save(run, run.fence, **{step_id: record})

        await self._until_redis_answers(run, f"the record of step {step_id}", save)

    async def _until_redis_answers(self, run: Run, what: str, write: Callable[[], Awaitable[T]]) -> T:
        """Do `write` (fenced, and safe to send again: it recognises its own first attempt), waiting out Redis
        for as long as this executor holds the run. A timed-out command may still run once Redis wakes up, so
        giving up would leave its effect behind without this holder knowing; once another executor took the
        run (the lease ran out while Redis was away), the fence refuses the write and Fenced is raised. A
        shutdown does not stop it: the grace period gives it time."""

        def waiting(exc: Exception, wait: float, attempt: int) -> None:
            if attempt == 1:
                EXECUTOR_ERRORS.labels("redis").inc()
                log.warning(
                    "run %s: %s is not written yet (%s); retrying until Redis answers",
                    run.id,
                    what,
                    exc,
                    extra=log_context(incident_id=run.incident_id, run_id=run.id, runbook=run.runbook),
                )

        return await until_redis_answers(write, waiting)

    async def _finish(self, visit: _Visit, out: runs.Finish) -> None:
        """End the run. The circuit breaker hears of it first (once per run, so a finish done again after a
        failure does not count twice), then one all-or-nothing write ends it in Redis; after that write, nothing
        in Redis is left to do, so a Redis failure cannot leave a finished run holding its slot."""
        run, status = out.run, out.run.status
        runbook = visit.runbook
        if self.guard is not None and runbook is not None and runbook.guardrails is not None and not out.blocked:
            await self.guard.outcome(runbook.name, runbook.guardrails, run.id, status is RunStatus.succeeded, _now())
        await self.store.finish(run, run.fence)
        RUNS_FINISHED.labels(run.runbook, status.value).inc()
        await self._result(run, runs.finished_kind(status), error=run.error)
        log.info(
            "run %s of %s for %s: %s%s [%s]",
            run.id,
            run.runbook,
            run.incident_id,
            status.value,
            f" ({run.error})" if run.error else "",
            out.rule,
            extra=log_context(incident_id=run.incident_id, run_id=run.id, runbook=run.runbook),
        )

    async def _page(self, run: Run, runbook: Runbook, incident: Incident, text: str, key: str) -> None:
        channel = runbook.page_channel or self.page_channel
        if channel is None:
            log.error("%s; no page channel is configured (set FIREBREAK_PAGE_CHANNEL)", text)
            return
        try:
            ctx = context(incident, self.topology, self.service_label, run)
            await self.runner.s.notifier.send(channel, text, ctx["incident"], key)
        except Exception as exc:  # noqa: BLE001 - best effort: a failed page must not keep the run from finishing
            log.error(
                "could not page %s about run %s: %s",
                channel,
                run.id,
                exc,
                extra=log_context(incident_id=run.incident_id, run_id=run.id, runbook=run.runbook, channel=channel),
            )

    async def _result(
        self,
        run: Run,
        kind: ResultKind,
        step: Step | None = None,
        *,
        attempt: int = 0,
        output: Any = None,
        error: str | None = None,
        duration_ms: float | None = None,
        actor: str = "firebreak",
    ) -> None:
        step_part = f"/{step.id}" if step else ""
        result = ActionResult(
            result_id=f"{run.id}{step_part}/{kind.value}/{run.fence}/{attempt}",
            kind=kind,
            run_id=run.id,
            runbook=run.runbook,
            incident_id=run.incident_id,
            step_id=step.id if step else None,
            action=step.action if step else None,
            attempt=attempt,
            at=_now(),
            actor=actor,
            output=output,
            error=error,
            duration_ms=duration_ms,
        )
        await self.publish(result)
