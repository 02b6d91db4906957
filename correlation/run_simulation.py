"""One runbook run on a virtual clock: the run core (correlation/runs.py) driven without Redis, leases or a worker.
`firebreak check` and `firebreak runbook test` both run their runs here, so neither has control flow of its own:
`when`, skips, `on_failure`, risk gates, parking and the end of a run are the executor's decisions.

The simulation answers what the world would: the incident is there with its alerts, a slot is free, the
guardrails admit the run (they count real runs in Redis: not simulated), the kill switch is off, nobody else
holds the run (its step records are the simulation's own), and a `risk: high` step is approved by as many
people as it needs (`approvers`). A `Park` or a `Retry` moves the clock to when the run falls due again.

What needs templates or the outside world it leaves to its caller, as `need`: `RenderParams`, `AskWhen` and
`ExecuteStep`. The caller answers each with `answer(...)` (`ParamsRendered`, `WhenAnswered`, `StepRan`), or
stops when it has seen enough; `play` does this for a caller whose answers are plain functions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from correlation.runs import (
    AskWhen,
    CheckGuardrails,
    Claim,
    Claimed,
    CountVotes,
    Due,
    Event,
    ExecuteStep,
    Finish,
    Forget,
    GuardrailsChecked,
    LookAtStep,
    Output,
    Park,
    Record,
    RenderParams,
    Retry,
    SlotTaken,
    StepLooked,
    TakeSlot,
    VotesCounted,
    apply,
    before,
    step_of,
)
from schemas.runbook import Run, Runbook, Step, StepRecord

Need = RenderParams | AskWhen | ExecuteStep
MAX_VISITS = 1000  # a run that keeps coming due (a caller that always answers `waiting`) stops here


class RunSimulation:
    def __init__(
        self, runbook: Runbook, run: Run, now: datetime, approvers: tuple[str, ...] = ("simulation", "simulation 2")
    ) -> None:
        self.runbook = runbook
        self.run = run
        self.now = now
        self.approvers = approvers
        self.records: dict[str, StepRecord] = {}  # each step's durable record: its claim, then its result
        self.outputs: list[Output] = []  # everything the core said, in order
        self.need: Need | None = None  # what the caller must answer next; None once the run ended
        self.end: Finish | Forget | None = None
        self.visits = 0
        self._feed(Due())

    def step(self, step_id: str) -> Step:
        found = step_of(self.runbook, step_id)
        assert found is not None
        return found

    def seen_by(self, step_id: str) -> Run:
        """The run as the step's templates see it (the steps before it)."""
        return before(self.run, step_id)

    def answer(self, event: Event, now: datetime | None = None) -> list[Output]:
        """Give the answer to `need` (at `now`: the clock moves on if it is later); returns what the core said."""
        if self.need is None:
            raise ValueError("the run has ended; nothing to answer")
        if now is not None and now > self.now:
            self.now = now
        self.need = None
        return self._feed(event)

    def play(self, answer: Callable[[Need], Event]) -> RunSimulation:
        """Answer every need with `answer` until the run ends."""
        while self.need is not None:
            self.answer(answer(self.need))
        return self

    def _feed(self, event: Event | None) -> list[Output]:
        said: list[Output] = []
        while event is not None:
            self.run, outputs = apply(self.run, self.runbook, event, self.now)
            said += outputs
            event = None
            for out in outputs:
                event = self._world(out) or event
        self.outputs += said
        return said

    def _world(self, out: Output) -> Event | None:
        """The answer the simulated world gives to a request, or None (the caller's need, or an effect)."""
        if isinstance(out, Record):
            self.records[out.step_id] = out.record
        elif isinstance(out, TakeSlot):
            return SlotTaken(True)
        elif isinstance(out, CheckGuardrails):
            return GuardrailsChecked(True)
        elif isinstance(out, LookAtStep):
            return StepLooked(out.step_id, found=self.records.get(out.step_id))
        elif isinstance(out, Claim):
            existing = self.records.get(out.step_id)
            self.records.setdefault(out.step_id, out.record)
            return Claimed(out.step_id, existing)
        elif isinstance(out, CountVotes):
            gate = self.step(out.step_id).gate
            assert gate is not None
            return VotesCounted(out.step_id, [_approve(by) for by in self.approvers[: gate.required]])
        elif isinstance(out, (Park, Retry)):
            self.visits += 1
            if self.visits > MAX_VISITS:
                raise RuntimeError(f"run {self.run.id} came due {MAX_VISITS} times without ending")
            at = out.until if isinstance(out, Park) else out.at
            self.now = max(self.now, at or self.now)
            return Due()
        elif isinstance(out, (Finish, Forget)):
            self.end = out
        elif isinstance(out, (RenderParams, AskWhen, ExecuteStep)):
            self.need = out
        return None


def _approve(by: str) -> dict[str, Any]:
    return {"decision": "approve", "by": by, "comment": "simulated"}
