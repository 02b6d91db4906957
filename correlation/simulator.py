"""The engine on a virtual clock: how `firebreak replay` and `firebreak check` drive it, so both say what the
live worker does with the same input.

Inputs are applied in time order. Between them, time moves to each moment a timer falls due, the grouping
stage's (group_wait, resolve_timeout, quiet_resolve, flapping hold-down, reopen window) and the pager's
(escalation levels), and nothing is stamped later than it fell due. At one instant the order is the
worker's: the tick first, then the inputs of that instant, then the pages due.

Where time stops: at `end` if given (`check`: its `run_for` after the last event), else when the last input
is applied and neither the engine nor the pager has a timer left (`replay`: every escalation runs out, every
held page goes out), but never more than `HORIZON` after the last input (a page held by a long silence
looks again every few seconds).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from correlation.engine import Engine, State
from schemas import IncidentEvent

HORIZON = timedelta(days=1)  # replay: how long time may run on after the last input at the most

# One input: its time, and what applying it at that time emits.
Input = tuple[datetime, Callable[[datetime], list[IncidentEvent]]]


class Escalations(Protocol):
    """What the simulation needs of a pager on a virtual clock (correlation/virtual_pager.py)."""

    def next_due(self) -> datetime | None: ...


@dataclass
class Simulation:
    """`observe` receives every incident event as it is emitted; `escalate(now)` pages what is due by `now`."""

    engine: Engine
    state: State
    observe: Callable[[list[IncidentEvent]], None]
    escalate: Callable[[datetime], None] = lambda now: None
    pager: Escalations | None = None

    def next_timer(self) -> datetime | None:
        """When the grouping stage's next timer falls due (stale heap items included: a tick skips them)."""
        return self.state.due[0][0] if self.state.due else None

    def run(self, inputs: Iterable[Input], end: datetime | None = None) -> datetime | None:
        """Apply `inputs` (in time order) and let time pass as described above; returns where time stopped."""
        queue = deque(inputs)
        if end is None and queue:
            end = queue[-1][0] + HORIZON
        now: datetime | None = None
        while True:
            engine_due = self.next_timer()
            pager_due = self.pager.next_due() if self.pager is not None else None
            upcoming = [t for t in (queue[0][0] if queue else None, engine_due, pager_due) if t is not None]
            if not upcoming or (end is not None and min(upcoming) > end):
                break
            now = min(upcoming) if now is None else max(now, min(upcoming))
            self.observe(self.engine.tick(self.state, now)[1])
            while queue and queue[0][0] <= now:
                self.observe(queue.popleft()[1](now))
            self.escalate(now)
        return now
