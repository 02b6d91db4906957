"""The run core (correlation/runs.py), table-driven: each row is a run, an event, and the state and outputs the core
must give, under the rule it names. Then the run simulation (correlation/run_simulation.py) that `firebreak check`
and `firebreak runbook test` drive, and those two commands' results over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from correlation import runs
from correlation.run_simulation import RunSimulation
from schemas.runbook import ResultKind, Run, Runbook, RunStatus, StepRecord, StepStatus

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def book(*steps: dict[str, Any], **extra: Any) -> Runbook:
    return Runbook.model_validate(
        {"name": "fix", "description": "d", "owner": "team-x", "on": ["opened"], **extra, "steps": list(steps)}
    )


HTTP = {"http": {"url": "http://deploy.internal/restart"}}
FLOW = book({"id": "a", **HTTP}, {"id": "b", **HTTP})
WHEN = book({"id": "a", "when": "labels.service == 'x'", **HTTP}, {"id": "b", **HTTP})
WHEN_GOES_ON = book({"id": "a", "when": "x", "on_failure": "continue", **HTTP}, {"id": "b", **HTTP})
PAGES = book({"id": "a", "on_failure": "page", **HTTP}, {"id": "b", **HTTP})
GOES_ON = book({"id": "a", "on_failure": "continue", **HTTP}, {"id": "b", **HTTP})
IDEMPOTENT = book({"id": "a", "idempotent": True, **HTTP})
WAIT = book({"id": "a", "wait": {"for": "30s"}}, {"id": "b", **HTTP})
ASK = book({"id": "a", "approval": {"prompt": "go?", "timeout": "5m"}})
NOTE = book({"id": "a", "annotate": {"text": "hello"}})
GATED = book({"id": "a", "risk": "high", "approvals": {"required": 2, "expires": "30m"}, **HTTP})
GUARDED = book({"id": "a", **HTTP}, guardrails={"rate": {"max": 1, "per": "1h"}})


def run(
    status: RunStatus = RunStatus.running, position: int = 0, age: timedelta = timedelta(minutes=1), **steps: StepRecord
) -> Run:
    return Run(
        id="run-1",
        runbook="fix",
        incident_id="inc-1",
        trigger="opened",
        trigger_event_id="ev-1",
        created_at=NOW - age,
        updated_at=NOW - age,
        status=status,
        position=position,
        steps=steps,
        fence=7,
    )


def rec(status: StepStatus, attempts: int = 1, started: timedelta = timedelta(minutes=1), **extra: Any) -> StepRecord:
    return StepRecord(
        status=status, action=extra.pop("action", "http"), attempts=attempts, fence=6, started_at=NOW - started, **extra
    )


PENDING = run(RunStatus.pending)


def said(outputs: list[runs.Output]) -> list[str]:
    """Each output in a word or two, with its rule: what a row expects."""

    def one(o: runs.Output) -> str:
        match o:
            case runs.Save(run=r):
                text = f"Save {r.status.value} @{r.position}"
            case runs.Record(step_id=s, kind=k):
                text = f"Record {s} {o.record.status.value} {k.value}"
            case runs.Publish(kind=k, step_id=s):
                text = f"Publish {k.value}" + (f" {s}" if s else "")
            case runs.Page(key=k):
                text = f"Page {k}"
            case runs.Audit(action=a, actor=who):
                text = f"Audit {a} by {who}"
            case (
                runs.Claim(step_id=s)
                | runs.LookAtStep(step_id=s)
                | runs.AskWhen(step_id=s)
                | runs.CountVotes(step_id=s)
            ):
                text = f"{type(o).__name__} {s}"
            case runs.ExecuteStep(step_id=s, attempt=n):
                text = f"ExecuteStep {s} #{n}"
            case runs.Park(step_id=s, until=u):
                text = f"Park {s} +{(u - NOW).total_seconds():g}s"
            case runs.Retry(at=at):
                text = "Retry next poll" if at is None else f"Retry +{(at - NOW).total_seconds():g}s"
            case runs.Finish(run=r, blocked=b):
                text = f"Finish {r.status.value}" + (" blocked" if b else "") + (f": {r.error}" if r.error else "")
            case _:
                text = type(o).__name__
        return f"{o.rule} {text}"

    return [one(o) for o in outputs]


@dataclass
class Row:
    rule: str
    what: str
    run: Run
    event: runs.Event
    outputs: list[str]
    runbook: Runbook | None = FLOW
    state: dict[str, Any] = field(default_factory=dict)  # fields of the new run; steps as {id: status}


ROWS = [
    # -- a run comes due --------------------------------------------------------------------------------
    Row("RUN-1", "a finished run leaves the schedule", run(RunStatus.succeeded), runs.Due(), ["RUN-1 Forget"]),
    Row(
        "RUN-2",
        "a run whose runbook is gone fails",
        run(),
        runs.Due(),
        ["RUN-2 Finish failed: runbook 'fix' is no longer loaded"],
        runbook=None,
        state={"status": RunStatus.failed},
    ),
    Row("RUN-3", "the incident is not in the read model yet", run(), runs.Due(incident=False), ["RUN-3 Retry +1s"]),
    Row(
        "RUN-4",
        "the incident never arrived",
        run(age=timedelta(minutes=11)),
        runs.Due(incident=False),
        [
            "RUN-4 Finish failed: incident inc-1 is not in the read model; run `firebreak readmodel rebuild` and start the "
            "runbook again"
        ],
        state={"status": RunStatus.failed},
    ),
    Row(
        "RUN-5",
        "a new run waits for the incident's first alert",
        run(RunStatus.pending, age=S),
        runs.Due(alerts=False),
        ["RUN-5 Retry +0.2s"],
    ),
    Row(
        "RUN-5",
        "not past the grace: it starts without one",
        run(RunStatus.pending, age=11 * S),
        runs.Due(alerts=False),
        ["RUN-6 TakeSlot"],
    ),
    Row("RUN-6", "a pending run asks for a slot", PENDING, runs.Due(), ["RUN-6 TakeSlot"]),
    Row("RUN-6", "no slot free", PENDING, runs.SlotTaken(False), ["RUN-6 Retry +1s"]),
    Row("RUN-6", "a slot: params next", PENDING, runs.SlotTaken(True), ["RUN-6 RenderParams"]),
    Row(
        "RUN-7",
        "a param that does not render fails the run",
        PENDING,
        runs.ParamsRendered(error="params.x: no"),
        ["RUN-7 Finish failed: params.x: no"],
        state={"status": RunStatus.failed, "params": {}},
    ),
    Row(
        "RUN-7",
        "guardrails are asked",
        PENDING,
        runs.ParamsRendered({"svc": "web"}),
        ["RUN-7 CheckGuardrails"],
        runbook=GUARDED,
        state={"status": RunStatus.pending, "params": {"svc": "web"}},
    ),
    Row(
        "RUN-9",
        "no guardrails: it starts",
        PENDING,
        runs.ParamsRendered({"svc": "web"}),
        ["RUN-9 Save running @0", "RUN-9 Publish run_started", "RUN-21 LookAtStep a"],
        state={"status": RunStatus.running, "params": {"svc": "web"}},
    ),
    Row(
        "RUN-9",
        "admitted",
        PENDING,
        runs.GuardrailsChecked(True),
        ["RUN-9 Save running @0", "RUN-9 Publish run_started", "RUN-21 LookAtStep a"],
        runbook=GUARDED,
    ),
    Row(
        "RUN-8",
        "blocked: published, paged, failed",
        PENDING,
        runs.GuardrailsChecked(False, "rate", "1 run within 1h", "web"),
        [
            "RUN-8 Publish run_blocked",
            "RUN-8 Page run-1/blocked",
            "RUN-8 Finish failed blocked: guardrail rate: 1 run within 1h",
        ],
        runbook=GUARDED,
        state={"status": RunStatus.failed},
    ),
    Row(
        "RUN-8",
        "a target that does not render blocks it too",
        PENDING,
        runs.GuardrailsChecked(False, error="no label"),
        ["RUN-8 Finish failed blocked: guardrails target: no label"],
        runbook=GUARDED,
    ),
    Row("RUN-21", "a running run goes on at its position", run(position=1), runs.Due(), ["RUN-21 LookAtStep b"]),
    Row(
        "RUN-22",
        "past the last step it succeeded",
        run(position=2),
        runs.Due(),
        ["RUN-22 Finish succeeded"],
        state={"status": RunStatus.succeeded, "error": None},
    ),
    # -- a step is looked at ----------------------------------------------------------------------------
    Row(
        "RUN-10",
        "the kill switch: no step starts",
        run(),
        runs.StepLooked("a", paused=True),
        ["RUN-10 Retry next poll"],
    ),
    Row(
        "RUN-14",
        "not claimed: claim it first",
        run(),
        runs.StepLooked("a"),
        ["RUN-14 Claim a"],
        state={"steps": {"a": StepStatus.started}},
    ),
    Row(
        "RUN-14",
        "claimed: started, then run",
        run(a=rec(StepStatus.started, started=timedelta(0))),
        runs.Claimed("a"),
        ["RUN-14 Publish step_started a", "RUN-14 ExecuteStep a #1"],
    ),
    Row(
        "RUN-14",
        "a claim found there counts as found",
        run(a=rec(StepStatus.started, started=timedelta(0))),
        runs.Claimed("a", rec(StepStatus.succeeded)),
        ["RUN-21 Save running @1", "RUN-21 LookAtStep b"],
        state={"position": 1, "steps": {"a": StepStatus.succeeded}},
    ),
    Row(
        "RUN-11",
        "finished under an earlier holder: its result stands",
        run(),
        runs.StepLooked("a", found=rec(StepStatus.succeeded)),
        ["RUN-21 Save running @1", "RUN-21 LookAtStep b"],
        state={"position": 1, "steps": {"a": StepStatus.succeeded}},
    ),
    Row(
        "RUN-11",
        "a failure found stands too, and pages again",
        run(),
        runs.StepLooked("a", found=rec(StepStatus.failed, error="HTTP 500")),
        ["RUN-20 Page run-1/a/page", "RUN-20 Finish failed: step a failed: HTTP 500"],
        runbook=PAGES,
    ),
    Row(
        "RUN-12",
        "a `when` is asked before the claim",
        run(),
        runs.StepLooked("a"),
        ["RUN-12 AskWhen a"],
        runbook=WHEN,
        state={"steps": {}},
    ),
    Row(
        "RUN-12",
        "`when` false: skipped",
        run(),
        runs.WhenAnswered("a", False),
        ["RUN-12 Record a skipped step_skipped", "RUN-21 Save running @1", "RUN-21 LookAtStep b"],
        runbook=WHEN,
        state={"position": 1, "steps": {"a": StepStatus.skipped}},
    ),
    Row("RUN-12", "`when` true: claimed", run(), runs.WhenAnswered("a", True), ["RUN-14 Claim a"], runbook=WHEN),
    Row(
        "RUN-13",
        "a `when` that cannot be evaluated fails the step",
        run(),
        runs.WhenAnswered("a", error="no steps.x"),
        ["RUN-13 Record a failed step_failed", "RUN-20 Finish failed: step a failed: when: no steps.x"],
        runbook=WHEN,
    ),
    Row(
        "RUN-13",
        "... and `on_failure: continue` goes on",
        run(),
        runs.WhenAnswered("a", error="no steps.x"),
        ["RUN-13 Record a failed step_failed", "RUN-21 Save running @1", "RUN-21 LookAtStep b"],
        runbook=WHEN_GOES_ON,
    ),
    Row(
        "RUN-15",
        "`started` without a result, not rerunnable: unknown",
        run(),
        runs.StepLooked("a", found=rec(StepStatus.started)),
        ["RUN-15 Record a unknown step_unknown", "RUN-20 Finish unknown: step a unknown: " + runs.UNKNOWN_ERROR],
        state={"status": RunStatus.unknown},
    ),
    Row(
        "RUN-15",
        "unknown with `on_failure: continue` goes on",
        run(),
        runs.StepLooked("a", found=rec(StepStatus.started)),
        ["RUN-15 Record a unknown step_unknown", "RUN-21 Save running @1", "RUN-21 LookAtStep b"],
        runbook=GOES_ON,
    ),
    Row(
        "RUN-16",
        "`started` and idempotent: run again, one attempt more",
        run(),
        runs.StepLooked("a", found=rec(StepStatus.started)),
        ["RUN-16 ExecuteStep a #2"],
        runbook=IDEMPOTENT,
        state={"steps": {"a": StepStatus.started}},
    ),
    Row(
        "RUN-16",
        "a wait is rerunnable",
        run(),
        runs.StepLooked("a", found=rec(StepStatus.started, action="wait")),
        ["RUN-16 ExecuteStep a #2"],
        runbook=WAIT,
    ),
    Row(
        "RUN-16",
        "a waiting step resumes",
        run(RunStatus.waiting),
        runs.StepLooked("a", found=rec(StepStatus.waiting, action="wait")),
        ["RUN-16 ExecuteStep a #1"],
        runbook=WAIT,
    ),
    # -- a step ran -------------------------------------------------------------------------------------
    Row(
        "RUN-19",
        "succeeded: recorded, next step",
        run(a=rec(StepStatus.started)),
        runs.StepRan("a", StepStatus.succeeded, {"ok": 1}),
        ["RUN-19 Record a succeeded step_succeeded", "RUN-21 Save running @1", "RUN-21 LookAtStep b"],
        state={"position": 1, "steps": {"a": StepStatus.succeeded}},
    ),
    Row(
        "RUN-22",
        "the last step done: succeeded",
        run(position=1, b=rec(StepStatus.started)),
        runs.StepRan("b", StepStatus.succeeded),
        ["RUN-19 Record b succeeded step_succeeded", "RUN-21 Save running @2", "RUN-22 Finish succeeded"],
        state={"status": RunStatus.succeeded},
    ),
    Row(
        "RUN-20",
        "failed, `on_failure: stop`",
        run(a=rec(StepStatus.started)),
        runs.StepRan("a", StepStatus.failed, error="HTTP 500"),
        ["RUN-19 Record a failed step_failed", "RUN-20 Finish failed: step a failed: HTTP 500"],
        state={"status": RunStatus.failed, "position": 0},
    ),
    Row(
        "RUN-20",
        "failed, `on_failure: page`",
        run(a=rec(StepStatus.started)),
        runs.StepRan("a", StepStatus.failed, error="HTTP 500"),
        [
            "RUN-19 Record a failed step_failed",
            "RUN-20 Page run-1/a/page",
            "RUN-20 Finish failed: step a failed: HTTP 500",
        ],
        runbook=PAGES,
    ),
    Row(
        "RUN-21",
        "failed, `on_failure: continue`",
        run(a=rec(StepStatus.started)),
        runs.StepRan("a", StepStatus.failed, error="x"),
        ["RUN-19 Record a failed step_failed", "RUN-21 Save running @1", "RUN-21 LookAtStep b"],
        runbook=GOES_ON,
    ),
    Row(
        "RUN-18",
        "waiting: recorded once, the run parks",
        run(a=rec(StepStatus.started, action="wait", started=timedelta(0))),
        runs.StepRan("a", StepStatus.waiting, wake_at=NOW + 30 * S),
        ["RUN-18 Record a waiting step_waiting", "RUN-18 Save waiting @0", "RUN-18 Park a +30s"],
        runbook=WAIT,
        state={"status": RunStatus.waiting, "steps": {"a": StepStatus.waiting}},
    ),
    Row(
        "RUN-18",
        "still waiting: parks again, nothing recorded",
        run(RunStatus.waiting, a=rec(StepStatus.waiting, action="wait")),
        runs.StepRan("a", StepStatus.waiting, wake_at=NOW + 2 * S),
        ["RUN-18 Save waiting @0", "RUN-18 Park a +2s"],
        runbook=WAIT,
    ),
    Row(
        "RUN-19",
        "an approval step publishes the decision",
        run(RunStatus.waiting, a=rec(StepStatus.waiting, action="approval")),
        runs.StepRan("a", StepStatus.succeeded, {"decision": "approve", "by": "ana"}),
        [
            "RUN-19 Publish approval_decided a",
            "RUN-19 Record a succeeded step_succeeded",
            "RUN-21 Save running @1",
            "RUN-22 Finish succeeded",
        ],
        runbook=ASK,
    ),
    Row(
        "RUN-19",
        "an annotation publishes its text",
        run(a=rec(StepStatus.started, action="annotate")),
        runs.StepRan("a", StepStatus.succeeded, {"text": "hello"}),
        [
            "RUN-19 Publish annotation a",
            "RUN-19 Record a succeeded step_succeeded",
            "RUN-21 Save running @1",
            "RUN-22 Finish succeeded",
        ],
        runbook=NOTE,
    ),
    # -- risk: high -------------------------------------------------------------------------------------
    Row(
        "RUN-17",
        "claimed: the votes are counted first",
        run(a=rec(StepStatus.started, started=timedelta(0))),
        runs.Claimed("a"),
        ["RUN-14 Publish step_started a", "RUN-17 CountVotes a"],
        runbook=GATED,
    ),
    Row(
        "RUN-17",
        "no votes yet: asks, pages, parks until it expires",
        run(a=rec(StepStatus.started, started=timedelta(0))),
        runs.VotesCounted("a"),
        [
            "RUN-17 Page run-1/a/gate",
            "RUN-17 Audit risk gate requested by None",
            "RUN-17 Record a waiting approval_requested",
            "RUN-17 Save waiting @0",
            "RUN-17 Park a +1800s",
        ],
        runbook=GATED,
        state={"status": RunStatus.waiting, "steps": {"a": StepStatus.waiting}},
    ),
    Row(
        "RUN-17",
        "one of two, or the same person twice: parks again, quietly",
        run(RunStatus.waiting, a=rec(StepStatus.waiting, started=timedelta(0))),
        runs.VotesCounted("a", [{"decision": "approve", "by": "ana"}, {"decision": "approve", "by": "ana"}]),
        ["RUN-17 Save waiting @0", "RUN-17 Park a +1800s"],
        runbook=GATED,
    ),
    Row(
        "RUN-17",
        "two people: started with them, run",
        run(RunStatus.waiting, a=rec(StepStatus.waiting)),
        runs.VotesCounted("a", [{"decision": "approve", "by": "ana"}, {"decision": "approve", "by": "bo"}]),
        [
            "RUN-17 Audit risk gate approved by ana, bo",
            "RUN-17 Publish approval_decided a",
            "RUN-17 Record a started step_started",
            "RUN-17 ExecuteStep a #1",
        ],
        runbook=GATED,
        state={"steps": {"a": StepStatus.started}},
    ),
    Row(
        "RUN-17",
        "any rejection refuses it",
        run(RunStatus.waiting, a=rec(StepStatus.waiting)),
        runs.VotesCounted(
            "a", [{"decision": "approve", "by": "ana"}, {"decision": "reject", "by": "cy", "comment": "no"}]
        ),
        [
            "RUN-17 Audit risk gate refused by cy",
            "RUN-17 Publish approval_decided a",
            "RUN-17 Record a failed step_failed",
            "RUN-20 Finish failed: step a failed: high-risk step not run: rejected by cy: no",
        ],
        runbook=GATED,
    ),
    Row(
        "RUN-17",
        "expired short of approvals: never run",
        run(RunStatus.waiting, a=rec(StepStatus.waiting, started=31 * 60 * S)),
        runs.VotesCounted("a", [{"decision": "approve", "by": "ana"}]),
        [
            "RUN-17 Audit risk gate refused by None",
            "RUN-17 Publish approval_decided a",
            "RUN-17 Record a failed step_failed",
            "RUN-20 Finish failed: step a failed: high-risk step not run: approval expired after 0:30:00 with 1 of 2 approvals "
            "(ana); a high-risk step never runs by default",
        ],
        runbook=GATED,
    ),
    Row(
        "RUN-16",
        "approved before a crash, idempotent: runs again without asking",
        run(a=rec(StepStatus.started)),
        runs.StepLooked("a", found=rec(StepStatus.started, approved_by=["ana", "bo"])),
        ["RUN-16 ExecuteStep a #2"],
        runbook=book({"id": "a", "risk": "high", "idempotent": True, **HTTP}),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.rule} {r.what}" for r in ROWS])
def test_the_run_core(row: Row):
    given = row.run.model_dump()
    state, outputs = runs.apply(row.run, row.runbook, row.event, NOW)
    assert said(outputs) == row.outputs
    for name, want in row.state.items():
        got = getattr(state, name)
        if name == "steps":
            got = {sid: r.status for sid, r in got.items()}
        assert got == want, name
    assert row.run.model_dump() == given  # the run given is not changed in place


def test_records_count_attempts_across_holders_and_carry_the_fence():
    """A re-run after a crash counts the lost attempt; a wait or approval counts visits, not attempts; every record
    carries the holder's fence; an approved step keeps who approved it."""
    retried = run(a=rec(StepStatus.started, attempts=2))
    state, _ = runs.apply(retried, FLOW, runs.StepRan("a", StepStatus.succeeded, attempts=3), NOW)
    assert (state.steps["a"].attempts, state.steps["a"].fence, state.steps["a"].finished_at) == (4, 6, NOW)
    waited = run(RunStatus.waiting, a=rec(StepStatus.waiting, attempts=1, action="wait"))
    state, _ = runs.apply(waited, WAIT, runs.StepRan("a", StepStatus.succeeded, attempts=5), NOW)
    assert state.steps["a"].attempts == 1
    state, [claim] = runs.apply(run(), FLOW, runs.StepLooked("a"), NOW)
    assert isinstance(claim, runs.Claim) and claim.record.fence == 7 and claim.record.started_at == NOW
    state, outputs = runs.apply(
        run(RunStatus.waiting, a=rec(StepStatus.waiting)),
        GATED,
        runs.VotesCounted("a", [{"decision": "approve", "by": "ana"}, {"decision": "approve", "by": "bo"}]),
        NOW,
    )
    assert state.steps["a"].approved_by == ["ana", "bo"] and state.steps["a"].deadline is None
    assert [o.actor for o in outputs if isinstance(o, runs.Publish)] == ["ana, bo"]


def test_pages_name_the_incident_and_the_reason():
    _, outputs = runs.apply(
        run(a=rec(StepStatus.started)), PAGES, runs.StepRan("a", StepStatus.failed, error="HTTP 500"), NOW
    )
    [page] = [o for o in outputs if isinstance(o, runs.Page)]
    assert page.text("inc-1", "web down") == (
        "Runbook fix (owner team-x) needs a human: step a failed for incident inc-1 (web down): HTTP 500"
    )
    _, outputs = runs.apply(run(a=rec(StepStatus.started, started=timedelta(0))), GATED, runs.VotesCounted("a"), NOW)
    [page] = [o for o in outputs if isinstance(o, runs.Page)]
    assert page.text("inc-1", "web down").startswith(
        "Runbook fix step a is high-risk and waits for approval by 2 people until "
        "2026-03-02T09:30:00+00:00: firebreak runs approve run-1"
    )


def test_an_answer_about_another_step_or_an_ended_run_is_refused():
    with pytest.raises(ValueError, match="position 0"):
        runs.apply(run(), FLOW, runs.StepLooked("b"), NOW)
    with pytest.raises(ValueError, match="succeeded"):
        runs.apply(run(RunStatus.succeeded), FLOW, runs.SlotTaken(True), NOW)


def test_templates_see_the_steps_before_the_one_running():
    current = run(a=rec(StepStatus.succeeded), b=rec(StepStatus.started))
    assert set(runs.before(current, "b").steps) == {"a"} and set(current.steps) == {"a", "b"}


# -- the simulation: a run on a virtual clock ---------------------------------------------------------------


def test_the_simulation_parks_on_its_clock_approves_gates_and_ends():
    """A wait answered `waiting` parks the run until it wakes: the clock moves there and the step is asked again.
    A risk gate counts as approved by as many people as it needs. The caller answers only params, `when` and steps."""
    rb = book(
        {"id": "look", **HTTP},
        {"id": "settle", "wait": {"for": "30s"}},
        {"id": "skip", "when": "false", **HTTP},
        {"id": "act", "risk": "high", "approvals": {"required": 2}, **HTTP},
    )
    asked: list[tuple[str, datetime]] = []

    def answer(need: runs.Request) -> runs.Event:
        if isinstance(need, runs.RenderParams):
            return runs.ParamsRendered({})
        if isinstance(need, runs.AskWhen):
            return runs.WhenAnswered(need.step_id, False)
        assert isinstance(need, runs.ExecuteStep)
        asked.append((need.step_id, simulation.now))
        if need.step_id == "settle" and simulation.now < need.started_at + 30 * S:
            return runs.StepRan(need.step_id, StepStatus.waiting, wake_at=need.started_at + 30 * S)
        return runs.StepRan(need.step_id, StepStatus.succeeded)

    simulation = RunSimulation(rb, run(RunStatus.pending), NOW)
    simulation.play(answer)
    assert asked == [("look", NOW), ("settle", NOW), ("settle", NOW + 30 * S), ("act", NOW + 30 * S)]
    assert (
        simulation.need is None
        and isinstance(simulation.end, runs.Finish)
        and simulation.run.status is RunStatus.succeeded
    )
    assert {k: r.status for k, r in simulation.run.steps.items()} == {
        "look": StepStatus.succeeded,
        "settle": StepStatus.succeeded,
        "skip": StepStatus.skipped,
        "act": StepStatus.succeeded,
    }
    assert simulation.run.steps["act"].approved_by == ["simulation", "simulation 2"]
    assert [o.kind for o in simulation.outputs if isinstance(o, runs.Publish)][:2] == [
        ResultKind.run_started,
        ResultKind.step_started,
    ]
    with pytest.raises(ValueError, match="ended"):
        simulation.answer(runs.StepRan("act", StepStatus.succeeded))


def test_the_simulation_stops_where_the_core_stops():
    simulation = RunSimulation(PAGES, run(RunStatus.pending), NOW)
    simulation.play(
        lambda need: (
            runs.ParamsRendered({})
            if isinstance(need, runs.RenderParams)
            else runs.StepRan(need.step_id, StepStatus.failed, error="boom")
        )
    )
    assert isinstance(simulation.end, runs.Finish) and simulation.end.step_id == "a"
    assert simulation.run.status is RunStatus.failed and "b" not in simulation.run.steps
    assert [type(o).__name__ for o in simulation.outputs][-2:] == ["Page", "Finish"]


# -- the two commands that drive it -------------------------------------------------------------------------

RUNBOOK = """name: flow
description: d
owner: team-x
on: [opened]
params:
  svc: "{{ labels.service }}"
steps:
  - id: look
    command: {argv: [echo, "hello {{ params.svc }}"]}
  - id: nope
    when: "labels.service == 'other'"
    command: {argv: [echo, never]}
  - id: reads
    when: "steps.look.output.exit_code == 0"
    command: {argv: [echo, "{{ steps.look.output.stdout | trim }}"]}
  - id: ask
    approval: {prompt: "go {{ params.svc }}?", timeout: 1m}
  - id: gated
    risk: high
    command: {argv: [echo, gated]}
  - id: bad
    command: {argv: ["false"]}
    on_failure: continue
  - id: refused
    http: {url: "http://10.0.0.1:9/x"}
    on_failure: page
  - id: never
    command: {argv: [echo, after]}
"""

SHOWN = """== flow (owner team-x)
  params.svc = 'checkout'
  [look] {"command": {"argv": ["echo", "hello checkout"], "cwd": null, "env": {}}}
      succeeded after 1 attempt(s)
      output: {"exit_code": 0, "stdout": "hello checkout\\n", "stderr": "", "truncated": false}
  [nope] skipped (when: labels.service == 'other')
  [reads] {"command": {"argv": ["echo", "hello checkout"], "cwd": null, "env": {}}}
      succeeded after 1 attempt(s)
      output: {"exit_code": 0, "stdout": "hello checkout\\n", "stderr": "", "truncated": false}
  [ask] {"approval": {"prompt": "go checkout?", "timeout": "60s", "default": "reject"}}
      not run outside a worker (approval); counted as succeeded
  [gated] {"command": {"argv": ["echo", "gated"], "cwd": null, "env": {}}}
      succeeded after 1 attempt(s)
      output: {"exit_code": 0, "stdout": "gated\\n", "stderr": "", "truncated": false}
  [bad] {"command": {"argv": ["false"], "cwd": null, "env": {}}}
      failed after 1 attempt(s): exit code 1
      output: {"exit_code": 1, "stdout": "", "stderr": "", "truncated": false}
  [refused] {"http": {"method": "POST", "url": "http://10.0.0.1:9/x", "headers": {}, "json": null}}
      failed after 1 attempt(s): host 10.0.0.1:9 is not on the allow-list; add it to FIREBREAK_ACTIONS_ALLOWED_HOSTS if the runbook should reach it
      on_failure: page; the run stops here
"""

SHOWN_DRY = """== flow (owner team-x) [dry run]
  params.svc = 'checkout'
  [look] {"command": {"argv": ["echo", "hello checkout"], "cwd": null, "env": {}}}
  [nope] skipped (when: labels.service == 'other')
  [reads] skipped (when: steps.look.output.exit_code == 0)
  [ask] {"approval": {"prompt": "go checkout?", "timeout": "60s", "default": "reject"}}
  [gated] {"command": {"argv": ["echo", "gated"], "cwd": null, "env": {}}}
  [bad] {"command": {"argv": ["false"], "cwd": null, "env": {}}}
  [refused] {"http": {"method": "POST", "url": "http://10.0.0.1:9/x", "headers": {}, "json": null}}
  [never] {"command": {"argv": ["echo", "after"], "cwd": null, "env": {}}}
"""


@pytest.mark.parametrize("dry_run", [False, True])
def test_runbook_test_runs_the_steps_through_the_core(tmp_path: Path, dry_run: bool):
    """`firebreak runbook test`: `when` skips, earlier outputs in templates, approval not run outside a worker, a risk
    gate passed, `on_failure: continue` goes on and `page` stops, as the executor would; commands really run."""
    import firebreak.cli_runbooks  # noqa: F401  (registers `runbook`)
    from firebreak.cli import main

    (tmp_path / "flow.yaml").write_text(RUNBOOK)
    (tmp_path / "alerts.json").write_text(
        '[{"labels": {"alertname": "HighLatency", "service": "checkout", "severity": "critical"}}]'
    )
    result = CliRunner().invoke(
        main,
        [
            "runbook",
            "test",
            str(tmp_path / "flow.yaml"),
            "--alert",
            str(tmp_path / "alerts.json"),
            *(["--dry-run"] if dry_run else []),
        ],
        env={"FIREBREAK_CONFIG": "", "FIREBREAK_ACTIONS_ALLOWED_COMMANDS": "echo,false"},
    )
    assert result.output.split("\n\n", 1)[1] == (SHOWN_DRY if dry_run else SHOWN)
    assert result.exit_code == (0 if dry_run else 1)


def test_check_lists_the_steps_the_core_would_run(tmp_path: Path):
    """`firebreak check`: a `when` that is false skips its step; one that reads an earlier step's output (a check has
    none) counts as running; a risk gate is listed as gated; nothing fails, so every later step is listed."""
    from firebreak.check import check

    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "flow.yaml").write_text(RUNBOOK)
    (tmp_path / "policies.yaml").write_text("policies:\n  - {name: svc, group_by: [service]}\n")
    path = tmp_path / "flow.firebreak.yaml"
    path.write_text("""
name: the runbook's steps
policies: policies.yaml
runbooks: runbooks
events:
  - {at: 0s, fire: {alertname: HighLatency, service: checkout}}
expect:
  runbooks:
    - {incident: 1, runbook: flow, steps: [look, reads, ask, gated, bad, refused, never], gated: [gated]}
""")
    result = check(path)
    assert result.passed, result.problems
