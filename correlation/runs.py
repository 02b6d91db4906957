"""Runbook runs: the control of one run, step by step, as pure decisions.

State is the `Run` (schemas/runbook.py), configuration its `Runbook`. `apply(run, runbook, event, now)` takes
one event and returns the run's new state and the outputs. The outputs are effects to carry out in order
(`Save`, `Record`, `Publish`, `Page`, `Audit`), then at most one of: a request whose answer is the next event
(`TakeSlot` -> `SlotTaken`, `RenderParams` -> `ParamsRendered`, `CheckGuardrails` -> `GuardrailsChecked`,
`LookAtStep` -> `StepLooked`, `AskWhen` -> `WhenAnswered`, `Claim` -> `Claimed`, `CountVotes` ->
`VotesCounted`, `ExecuteStep` -> `StepRan`), or an end of this visit (`Park`, `Retry`, `Finish`, `Forget`).
Every output carries the rule that made it and why. No I/O and no clock reads: templates, Redis, the runner
and the guardrails' counters are the caller's; the caller answers the requests.

There is no separate tick: a run's timers are its `Park` and `Retry` outputs; when one falls due the caller
takes the run again and says `Due`. Callers: the live executor (actions/executor.py: leases, fencing,
Redis, the runner) and the simulation on a virtual clock (correlation/run_simulation.py: `firebreak check`,
`firebreak runbook test`).

| rule   | run / step state                      | event                                   | result                                       |
|--------|---------------------------------------|-----------------------------------------|----------------------------------------------|
| RUN-1  | run finished                          | due                                     | `Forget`: off the schedule                   |
| RUN-2  | any                                   | due, its runbook is no longer loaded    | `Finish` failed                              |
| RUN-3  | any                                   | due, incident not in the read model     | `Retry` in 1 s (the read model catches up)   |
| RUN-4  | any, created over 10 min ago          | due, incident not in the read model     | `Finish` failed, with the fix                |
| RUN-5  | pending, created under 10 s ago       | due, the incident holds no alert yet    | `Retry` in 0.2 s: params should see an alert |
| RUN-6  | pending                               | due                                     | `TakeSlot` (the runbook's `concurrency`);    |
|        |                                       |                                         | none free: `Retry` in 1 s                    |
| RUN-7  | pending, holds a slot                 | params rendered (or not)                | `CheckGuardrails` if it has any; a param     |
|        |                                       |                                         | that does not render: `Finish` failed        |
| RUN-8  | pending                               | a guardrail blocks it (or its target    | `run_blocked`, `Page` the reason, `Finish`   |
|        |                                       | does not render)                        | failed as blocked (the breaker ignores it)   |
| RUN-9  | pending                               | admitted                                | running, `run_started`, first step           |
| RUN-10 | running                               | next step, the kill switch is on        | `Retry` at the next poll: no step starts     |
| RUN-11 | step finished under an earlier holder | step looked at                          | its result stands; not run again             |
| RUN-12 | step not claimed, has `when`          | step looked at                          | `AskWhen`; false: skipped                    |
| RUN-13 | step not claimed                      | its `when` cannot be evaluated          | step failed (`when: ...`), `on_failure`      |
| RUN-14 | step not claimed                      | `when` holds (or none)                  | `Claim` it `started` (durably, fenced) before|
|        |                                       |                                         | it runs; `step_started`, then RUN-17 or run  |
|        |                                       |                                         | it; a claim found there: as looked at        |
| RUN-15 | step found `started`, not rerunnable  | step looked at                          | `unknown`: the outcome was lost in a crash   |
| RUN-16 | step found waiting, or `started` and  | step looked at                          | resumed: run again (`started`: one more      |
|        | rerunnable (idempotent, or parks)     |                                         | attempt)                                     |
| RUN-17 | `risk: high`, not yet approved        | `CountVotes` answered                   | any rejection, or expiry short of the        |
|        |                                       |                                         | approvals: failed, never run; enough         |
|        |                                       |                                         | different people: `started` with them, run;  |
|        |                                       |                                         | else waits until the expiry (the first time: |
|        |                                       |                                         | `Page` the request, `approval_requested`)    |
| RUN-18 | step running                          | it ran: waiting (wait, approval)        | step waiting, run waiting, `Park` until it   |
|        |                                       |                                         | wakes (an approval decided wakes it sooner)  |
| RUN-19 | step running                          | it ran: succeeded or failed             | recorded; attempts add up across holders     |
| RUN-20 | step failed or unknown                | `on_failure: stop` / `page`             | (`page`: `Page` the owner) `Finish` failed,  |
|        |                                       |                                         | or unknown for an unknown step               |
| RUN-21 | step done (or `on_failure: continue`) | -                                       | next step                                    |
| RUN-22 | past the last step                    | -                                       | `Finish` succeeded                           |

Which step kinds park (wait, approval) is asked in one place, `parks`; what a finished step reports besides
its record (an approval's decision, an annotation) in another, `reports`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.runbook import (
    OnFailure,
    ResultKind,
    Run,
    Runbook,
    RunStatus,
    Step,
    StepRecord,
    StepStatus,
)

MISSING_INCIDENT_LIMIT = timedelta(minutes=10)  # RUN-4: how long a run waits for its incident in the read model
ALERTS_GRACE = timedelta(seconds=10)  # RUN-5: how long a new run waits for its incident's first alert
INCIDENT_RETRY = timedelta(seconds=1)  # RUN-3
ALERTS_RETRY = timedelta(seconds=0.2)  # RUN-5
SLOT_RETRY = timedelta(seconds=1)  # RUN-6
UNKNOWN_ERROR = (
    "the executor running this step stopped before recording its outcome; check its effect by hand "
    "(declare the step `idempotent: true` if running it again is safe)"
)


# -- step kinds: the only questions about kinds the run control asks --------------------------------------


def parks(step: Step) -> bool:
    """Whether the step waits rather than acts (wait, approval): it changes nothing, so it may run again after a
    crash, and its attempts are not counted per run."""
    return step.parks


def rerunnable(step: Step) -> bool:
    """Whether running it again after a crash is harmless: declared so, or a kind that changes nothing."""
    return step.rerunnable


# -- events: what happened, as the caller saw it ----------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """The run came due and the caller holds it (a lease; a simulation's turn)."""

    incident: bool = True  # its incident is in the read model
    alerts: bool = True  # and holds at least one alert


@dataclass(frozen=True)
class SlotTaken:
    taken: bool


@dataclass(frozen=True)
class ParamsRendered:
    params: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # why a param did not render


@dataclass(frozen=True)
class GuardrailsChecked:
    allowed: bool
    guardrail: str = ""  # which one blocked it
    reason: str = ""
    target: str = ""
    error: str | None = None  # the target template did not render


@dataclass(frozen=True)
class StepLooked:
    step_id: str
    paused: bool = False  # the kill switch is on
    found: StepRecord | None = None  # its durable record (a claim or a result), if any


@dataclass(frozen=True)
class WhenAnswered:
    step_id: str
    holds: bool = False
    error: str | None = None  # the expression cannot be evaluated


@dataclass(frozen=True)
class Claimed:
    step_id: str
    existing: StepRecord | None = None  # the record an earlier holder left: the claim wrote nothing


@dataclass(frozen=True)
class VotesCounted:
    step_id: str
    votes: Sequence[Mapping[str, Any]] = ()  # {decision: approve|reject, by, comment}, in the order given


@dataclass(frozen=True)
class StepRan:
    step_id: str
    status: StepStatus  # succeeded, failed or waiting
    output: Any = None
    error: str | None = None
    attempts: int = 1
    wake_at: datetime | None = None  # waiting: when to look again


Event = (
    Due | SlotTaken | ParamsRendered | GuardrailsChecked | StepLooked | WhenAnswered | Claimed | VotesCounted | StepRan
)


# -- outputs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    rule: str = field(kw_only=True)
    why: str = field(default="", kw_only=True)


@dataclass(frozen=True)
class Save(Output):
    """Write the run (fenced)."""

    run: Run


@dataclass(frozen=True)
class Record(Output):
    """Write the run and the step's durable record (`run.steps[step_id]`), then publish `kind` for it."""

    run: Run
    step_id: str
    kind: ResultKind

    @property
    def record(self) -> StepRecord:
        return self.run.steps[self.step_id]


@dataclass(frozen=True)
class Publish(Output):
    """One more fact about the run on `action-results`."""

    kind: ResultKind
    step_id: str | None = None
    attempt: int = 0
    output: Any = None
    error: str | None = None
    actor: str = "firebreak"


@dataclass(frozen=True)
class Page(Output):
    """Page the runbook's channel. The text names the incident when `names_incident` (the caller knows its title)."""

    key: str
    head: str
    tail: str = ""
    names_incident: bool = True

    def text(self, incident_id: str, title: str) -> str:
        return f"{self.head} {incident_id} ({title}){self.tail}" if self.names_incident else self.head


@dataclass(frozen=True)
class Audit(Output):
    """An entry in the audit log about a `risk: high` step."""

    action: str
    step_id: str
    actor: str | None
    detail: str


@dataclass(frozen=True)
class TakeSlot(Output):
    """Request: one of the runbook's `concurrency` slots for this run. Answer: `SlotTaken`."""


@dataclass(frozen=True)
class RenderParams(Output):
    """Request: the runbook's params rendered from the incident. Answer: `ParamsRendered`."""


@dataclass(frozen=True)
class CheckGuardrails(Output):
    """Request: whether the runbook's guardrails admit this run. Answer: `GuardrailsChecked`."""


@dataclass(frozen=True)
class LookAtStep(Output):
    """Request: the kill switch and the step's durable record. Answer: `StepLooked`."""

    step_id: str


@dataclass(frozen=True)
class AskWhen(Output):
    """Request: the step's `when`, read with the steps before it. Answer: `WhenAnswered`."""

    step_id: str


@dataclass(frozen=True)
class Claim(Output):
    """Request: write `record` as the step's durable record unless one is there. Answer: `Claimed`."""

    step_id: str
    record: StepRecord


@dataclass(frozen=True)
class CountVotes(Output):
    """Request: the decisions people gave on a `risk: high` step. Answer: `VotesCounted`."""

    step_id: str


@dataclass(frozen=True)
class ExecuteStep(Output):
    """Request: run the step's action (this attempt; a wait or approval is timed from `started_at`). Answer: `StepRan`."""

    step_id: str
    attempt: int
    started_at: datetime


@dataclass(frozen=True)
class Park(Output):
    """End of visit: the run waits at the step; look again at `until` (or when an approval is decided)."""

    step_id: str
    until: datetime


@dataclass(frozen=True)
class Retry(Output):
    """End of visit: look at the run again at `at` (None: at the caller's next poll)."""

    at: datetime | None


@dataclass(frozen=True)
class Finish(Output):
    """End of the run: write it (`run.status`, `run.error`), leave the schedule and the slot, publish the end. A
    run the guardrails blocked (`blocked`) does not count for the circuit breaker."""

    run: Run
    step_id: str | None = None  # the step that ended it, if one did
    blocked: bool = False


@dataclass(frozen=True)
class Forget(Output):
    """End: the run finished already; take it off the schedule."""


Request = TakeSlot | RenderParams | CheckGuardrails | LookAtStep | AskWhen | Claim | CountVotes | ExecuteStep
End = Park | Retry | Finish | Forget
Result = tuple[Run, list[Output]]


# -- the transitions ----------------------------------------------------------------------------------------


def apply(run: Run, runbook: Runbook | None, event: Event, now: datetime) -> Result:
    """The run after `event` at `now`, and what follows from it (see the module's table)."""
    if isinstance(event, Due):
        return _due(run, runbook, event, now)
    if runbook is None or run.status.finished:
        raise ValueError(f"run {run.id}: {type(event).__name__} for a run that is {run.status.value} or has no runbook")
    if isinstance(event, SlotTaken):
        if not event.taken:
            return run, [
                Retry(
                    now + SLOT_RETRY, rule="RUN-6", why=f"all {runbook.concurrency} slots of {runbook.name} are taken"
                )
            ]
        return run, [RenderParams(rule="RUN-6", why="holds a slot")]
    if isinstance(event, ParamsRendered):
        return _params(run, runbook, event, now)
    if isinstance(event, GuardrailsChecked):
        return _admitted(run, runbook, event, now)
    step = _current(run, runbook, event.step_id)
    if isinstance(event, StepLooked):
        if event.paused:
            return run, [Retry(None, rule="RUN-10", why="runbooks are paused (the kill switch): no step starts")]
        return _found(run, runbook, step, event.found, now, [])
    if isinstance(event, WhenAnswered):
        if event.error is not None:
            failed = _record_of(run, step, now, status=StepStatus.failed, error=f"when: {event.error}")
            return _ended(
                run,
                runbook,
                step,
                failed,
                ResultKind.step_failed,
                now,
                [],
                rule="RUN-13",
                why="its `when` cannot be evaluated",
            )
        if not event.holds:
            skipped = _record_of(run, step, now, status=StepStatus.skipped)
            return _ended(
                run,
                runbook,
                step,
                skipped,
                ResultKind.step_skipped,
                now,
                [],
                rule="RUN-12",
                why=f"when is false: {step.when}",
            )
        return _claim(run, step, now)
    if isinstance(event, Claimed):
        if event.existing is not None:  # claimed between the look and now: as if found there
            return _found(_without(run, step.id), runbook, step, event.existing, now, [])
        record = run.steps[step.id]
        claimed = "claimed: a crash from here leaves it `started`"
        return _execute(
            run,
            step,
            record,
            [Publish(ResultKind.step_started, step.id, attempt=1, rule="RUN-14", why=claimed)],
            rule="RUN-14",
            why=claimed,
        )
    if isinstance(event, VotesCounted):
        return _gate(run, runbook, step, event.votes, now)
    return _ran(run, runbook, step, event, now)


def before(run: Run, step_id: str) -> Run:
    """The run as a step's templates see it: the steps before it (`steps.<id>`), not its own record."""
    return _without(run, step_id) if step_id in run.steps else run


def step_of(runbook: Runbook, step_id: str | None) -> Step | None:
    return next((s for s in runbook.steps if s.id == step_id), None) if step_id is not None else None


def finished_kind(status: RunStatus) -> ResultKind:
    """The result a finished run publishes."""
    return {RunStatus.succeeded: ResultKind.run_succeeded, RunStatus.unknown: ResultKind.run_unknown}.get(
        status, ResultKind.run_failed
    )


def reports(step: Step, status: StepStatus, output: Any) -> list[tuple[ResultKind, str]]:
    """What a finished step publishes besides its record: (kind, actor). An approval step's decision, an
    annotation's text."""
    found: list[tuple[ResultKind, str]] = []
    if step.action == "approval" and isinstance(output, dict):
        found.append((ResultKind.approval_decided, str(output.get("by"))))
    if step.action == "annotate" and status is StepStatus.succeeded:
        found.append((ResultKind.annotation, "firebreak"))
    return found


def _due(run: Run, runbook: Runbook | None, event: Due, now: datetime) -> Result:
    if run.status.finished:
        return run, [Forget(rule="RUN-1", why=f"the run is {run.status.value} already")]
    if runbook is None:
        return _finish(run, RunStatus.failed, f"runbook {run.runbook!r} is no longer loaded", now, rule="RUN-2")
    if not event.incident:
        if now - run.created_at > MISSING_INCIDENT_LIMIT:
            return _finish(
                run,
                RunStatus.failed,
                f"incident {run.incident_id} is not in the read model; run `firebreak "
                "readmodel rebuild` and start the runbook again",
                now,
                rule="RUN-4",
            )
        return run, [
            Retry(now + INCIDENT_RETRY, rule="RUN-3", why=f"incident {run.incident_id} is not in the read model yet")
        ]
    if run.status is RunStatus.pending and not event.alerts and now - run.created_at < ALERTS_GRACE:
        # An incident opens one event before its first alert joins it: let the read model catch up so params see
        # the alert (an `opened` run is created as soon as the incident exists).
        return run, [Retry(now + ALERTS_RETRY, rule="RUN-5", why="the incident holds no alert yet")]
    if run.status is RunStatus.pending:
        return run, [TakeSlot(rule="RUN-6", why=f"runbook {runbook.name} runs at most {runbook.concurrency} at once")]
    return _next(run, runbook, now, [])


def _params(run: Run, runbook: Runbook, event: ParamsRendered, now: datetime) -> Result:
    if event.error is not None:
        return _finish(run, RunStatus.failed, event.error, now, rule="RUN-7")
    run = run.model_copy(update={"params": dict(event.params)})
    if runbook.guardrails is not None:
        return run, [CheckGuardrails(rule="RUN-7", why="the runbook has guardrails")]
    return _start(run, runbook, now)


def _admitted(run: Run, runbook: Runbook, event: GuardrailsChecked, now: datetime) -> Result:
    if event.error is not None:
        return _finish(run, RunStatus.failed, f"guardrails target: {event.error}", now, rule="RUN-8", blocked=True)
    if event.allowed:
        return _start(run, runbook, now)
    reason = f"guardrail {event.guardrail}: {event.reason}"
    outputs: list[Output] = [
        Publish(
            ResultKind.run_blocked,
            output={"guardrail": event.guardrail, "target": event.target, "reason": event.reason},
            rule="RUN-8",
            why=reason,
        ),
        Page(
            f"{run.id}/blocked",
            f"Runbook {runbook.name} (owner {runbook.owner}) did not run for incident",
            f": {reason}. Remediate by hand or raise the limit.",
            rule="RUN-8",
            why=reason,
        ),
    ]
    return _finish(run, RunStatus.failed, reason, now, outputs, rule="RUN-8", blocked=True)


def _start(run: Run, runbook: Runbook, now: datetime) -> Result:
    run = run.model_copy(update={"status": RunStatus.running, "updated_at": now})
    return _next(
        run,
        runbook,
        now,
        [
            Save(run, rule="RUN-9", why="admitted"),
            Publish(ResultKind.run_started, output={"params": run.params}, rule="RUN-9", why="admitted"),
        ],
    )


def _next(run: Run, runbook: Runbook, now: datetime, outputs: list[Output]) -> Result:
    if run.position >= len(runbook.steps):
        return _finish(run, RunStatus.succeeded, None, now, outputs, rule="RUN-22")
    step = runbook.steps[run.position]
    return run, [*outputs, LookAtStep(step.id, rule="RUN-21", why=f"step {run.position + 1} of {len(runbook.steps)}")]


def _found(
    run: Run, runbook: Runbook, step: Step, found: StepRecord | None, now: datetime, outputs: list[Output]
) -> Result:
    if found is None:
        if step.when is not None:
            return run, [*outputs, AskWhen(step.id, rule="RUN-12", why=f"when: {step.when}")]
        return _claim(run, step, now)
    if found.status.finished:
        run = _with(run, step.id, found, now)
        return _after(
            run,
            runbook,
            step,
            found,
            now,
            outputs,
            rule="RUN-11",
            why=f"it {found.status.value} under an earlier holder; its result stands",
        )
    if found.status is StepStatus.waiting or (found.status is StepStatus.started and rerunnable(step)):
        resumed = found.model_copy(
            update={"fence": run.fence, "attempts": found.attempts + (found.status is StepStatus.started)}
        )
        return _execute(
            _with(run, step.id, resumed, now),
            step,
            resumed,
            outputs,
            rule="RUN-16",
            why=f"found {found.status.value}: run again, attempt {resumed.attempts}",
        )
    unknown = found.model_copy(
        update={"status": StepStatus.unknown, "finished_at": now, "fence": run.fence, "error": UNKNOWN_ERROR}
    )
    return _ended(
        run,
        runbook,
        step,
        unknown,
        ResultKind.step_unknown,
        now,
        outputs,
        rule="RUN-15",
        why="found `started` without a result, and not safe to run again",
    )


def _claim(run: Run, step: Step, now: datetime) -> Result:
    started = StepRecord(status=StepStatus.started, action=step.action, fence=run.fence, started_at=now, attempts=1)
    return _with(run, step.id, started, now), [Claim(step.id, started, rule="RUN-14", why="claimed before it runs")]


def _execute(run: Run, step: Step, record: StepRecord, outputs: list[Output], *, rule: str, why: str) -> Result:
    assert record.started_at is not None
    if step.gate is not None and not record.approved_by:
        return run, [*outputs, CountVotes(step.id, rule="RUN-17", why="risk: high runs only once approved")]
    return run, [*outputs, ExecuteStep(step.id, record.attempts, record.started_at, rule=rule, why=why)]


def _gate(run: Run, runbook: Runbook, step: Step, votes: Sequence[Mapping[str, Any]], now: datetime) -> Result:
    gate, record = step.gate, run.steps[step.id]
    assert gate is not None and record.started_at is not None
    approvers = list(dict.fromkeys(str(v["by"]) for v in votes if v["decision"] == "approve"))
    rejected = next((v for v in votes if v["decision"] == "reject"), None)
    deadline = record.started_at + gate.expires
    if rejected is not None or (len(approvers) < gate.required and now >= deadline):
        why = (
            f"rejected by {rejected['by']}" + (f": {rejected['comment']}" if rejected.get("comment") else "")
            if rejected is not None
            else f"approval expired after {gate.expires} with {len(approvers)} of {gate.required} "
            f"approvals ({', '.join(approvers) or 'none'}); a high-risk step never runs by default"
        )
        by = str(rejected["by"]) if rejected is not None else None
        outputs: list[Output] = [
            Audit("risk gate refused", step.id, by, why, rule="RUN-17", why=why),
            Publish(
                ResultKind.approval_decided,
                step.id,
                output={"decision": "reject", "by": by or "timeout", "approvers": approvers},
                actor=by or "firebreak",
                rule="RUN-17",
                why=why,
            ),
        ]
        failed = record.model_copy(
            update={"status": StepStatus.failed, "finished_at": now, "error": f"high-risk step not run: {why}"}
        )
        return _ended(run, runbook, step, failed, ResultKind.step_failed, now, outputs, rule="RUN-17", why=why)
    if len(approvers) >= gate.required:
        who = ", ".join(approvers)
        why = f"{len(approvers)} of {gate.required} approvals: {who}"
        started = record.model_copy(update={"status": StepStatus.started, "approved_by": approvers, "deadline": None})
        run = _with(run, step.id, started, now)
        return _execute(
            run,
            step,
            started,
            [  # a crash from here: `unknown`
                Audit("risk gate approved", step.id, who, why, rule="RUN-17", why=why),
                Publish(
                    ResultKind.approval_decided,
                    step.id,
                    output={"decision": "approve", "by": who, "approvers": approvers},
                    actor=who,
                    rule="RUN-17",
                    why=why,
                ),
                Record(run, step.id, ResultKind.step_started, rule="RUN-17", why=why),
            ],
            rule="RUN-17",
            why=why,
        )
    waiting = record.model_copy(update={"status": StepStatus.waiting, "deadline": deadline})
    if record.status is StepStatus.waiting:  # one of two approvals so far, or none yet: the audit log has each vote
        return _park(run, step, waiting, now, [], rule="RUN-17", why=f"{len(approvers)} of {gate.required} approvals")
    people = "people" if gate.required > 1 else "person"
    asked = (
        f"Runbook {runbook.name} step {step.id} is high-risk and waits for approval by {gate.required} {people} until "
        f"{deadline.isoformat()}: firebreak runs approve {run.id} --actor NAME (or reject)"
    )
    run = _with(run, step.id, waiting, now)
    return _park(
        run,
        step,
        waiting,
        now,
        [
            Page(f"{run.id}/{step.id}/gate", asked, names_incident=False, rule="RUN-17", why="approval requested"),
            Audit(
                "risk gate requested",
                step.id,
                None,
                f"needs {gate.required} approval(s) from different people before {deadline.isoformat()}",
                rule="RUN-17",
                why="approval requested",
            ),
            Record(run, step.id, ResultKind.approval_requested, rule="RUN-17", why="approval requested"),
        ],
        rule="RUN-17",
        why=f"waits for {gate.required} approval(s)",
    )


def _ran(run: Run, runbook: Runbook, step: Step, event: StepRan, now: datetime) -> Result:
    record = run.steps[step.id]
    if event.status is StepStatus.waiting:
        waiting = record.model_copy(update={"status": StepStatus.waiting, "deadline": event.wake_at})
        outputs: list[Output] = []
        if record.status is not StepStatus.waiting:
            run = _with(run, step.id, waiting, now)
            outputs.append(Record(run, step.id, ResultKind.step_waiting, rule="RUN-18", why="waits"))
        return _park(run, step, waiting, now, outputs, rule="RUN-18", why=f"{step.action} waits")
    finished = record.model_copy(
        update={
            "status": event.status,
            "finished_at": now,
            "output": event.output,
            "error": event.error,
            # attempts add up across holders: a re-run after a crash counts the lost attempt too
            "attempts": record.attempts if parks(step) else record.attempts - 1 + event.attempts,
        }
    )
    kind = ResultKind.step_succeeded if event.status is StepStatus.succeeded else ResultKind.step_failed
    outputs = [
        Publish(extra, step.id, output=event.output, actor=actor, rule="RUN-19", why=f"{step.action} step")
        for extra, actor in reports(step, event.status, event.output)
    ]
    return _ended(
        run,
        runbook,
        step,
        finished,
        kind,
        now,
        outputs,
        rule="RUN-19",
        why=f"{event.status.value} after {event.attempts} attempt(s)",
    )


def _ended(
    run: Run,
    runbook: Runbook,
    step: Step,
    record: StepRecord,
    kind: ResultKind,
    now: datetime,
    outputs: list[Output],
    *,
    rule: str,
    why: str,
) -> Result:
    """A step's new record, recorded, and what follows it."""
    run = _with(run, step.id, record, now)
    return _after(
        run, runbook, step, record, now, [*outputs, Record(run, step.id, kind, rule=rule, why=why)], rule=rule, why=why
    )


def _after(
    run: Run,
    runbook: Runbook,
    step: Step,
    record: StepRecord,
    now: datetime,
    outputs: list[Output],
    *,
    rule: str,
    why: str,
) -> Result:
    if record.status is StepStatus.waiting:
        return _park(run, step, record, now, outputs, rule=rule, why=why)
    if record.status in (StepStatus.failed, StepStatus.unknown) and step.on_failure is not OnFailure.continue_:
        failure = f"step {step.id} {record.status.value}: {record.error}"
        if step.on_failure is OnFailure.page:
            outputs = [
                *outputs,
                Page(
                    f"{run.id}/{step.id}/page",
                    f"Runbook {runbook.name} (owner {runbook.owner}) needs a "
                    f"human: step {step.id} {record.status.value} for incident",
                    f": {record.error}",
                    rule="RUN-20",
                    why="on_failure: page",
                ),
            ]
        status = RunStatus.unknown if record.status is StepStatus.unknown else RunStatus.failed
        return _finish(run, status, failure, now, outputs, rule="RUN-20", step_id=step.id)
    run = run.model_copy(update={"position": run.position + 1, "status": RunStatus.running})
    return _next(run, runbook, now, [*outputs, Save(run, rule="RUN-21", why=f"step {step.id} {record.status.value}")])


def _park(
    run: Run, step: Step, record: StepRecord, now: datetime, outputs: list[Output], *, rule: str, why: str
) -> Result:
    run = _with(run, step.id, record, now).model_copy(update={"status": RunStatus.waiting})
    until = record.deadline or now
    return run, [*outputs, Save(run, rule=rule, why=why), Park(step.id, until, rule=rule, why=why)]


def _finish(
    run: Run,
    status: RunStatus,
    error: str | None,
    now: datetime,
    outputs: Sequence[Output] = (),
    *,
    rule: str,
    step_id: str | None = None,
    blocked: bool = False,
) -> Result:
    run = run.model_copy(update={"status": status, "error": error, "updated_at": now})
    return run, [*outputs, Finish(run, step_id, blocked, rule=rule, why=error or status.value)]


def _current(run: Run, runbook: Runbook, step_id: str) -> Step:
    if run.position >= len(runbook.steps) or runbook.steps[run.position].id != step_id:
        raise ValueError(f"run {run.id}: an answer about step {step_id!r}, but the run is at position {run.position}")
    return runbook.steps[run.position]


def _record_of(run: Run, step: Step, now: datetime, **fields: Any) -> StepRecord:
    return StepRecord(action=step.action, fence=run.fence, started_at=now, finished_at=now, **fields)


def _with(run: Run, step_id: str, record: StepRecord, now: datetime) -> Run:
    return run.model_copy(update={"steps": {**run.steps, step_id: record}, "updated_at": now})


def _without(run: Run, step_id: str) -> Run:
    return run.model_copy(update={"steps": {k: v for k, v in run.steps.items() if k != step_id}})
