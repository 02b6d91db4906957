"""The two stages composed over whole-stream state, for offline use (tests, replay).

The production worker runs the same stage functions one table entry at a time; this module only routes
each alert through dedup, then grouping, the way the topics between them would.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from correlation.dedup import DedupOutcome, FingerprintState, dedup
from correlation.grouping import GroupState, group
from schemas import Alert, IncidentEvent


@dataclass
class State:
    """Per-fingerprint and per-correlation-key state, plus the positions the topics would assign."""

    fingerprints: dict[str, FingerprintState] = field(default_factory=dict)
    groups: dict[str, GroupState] = field(default_factory=dict)
    next_position: int = 0
    outcomes: Counter[DedupOutcome] = field(default_factory=Counter)


@dataclass(frozen=True)
class Engine:
    group_by: tuple[str, ...]

    def apply(self, state: State, alert: Alert, now: datetime) -> tuple[State, list[IncidentEvent]]:
        """Run one alert through both stages. `state` is updated in place (its entries are immutable) and returned."""
        position = state.next_position
        state.next_position += 1
        fp_entry, alert_events, outcome = dedup(state.fingerprints.get(alert.fingerprint), alert, position, now, self.group_by)
        state.fingerprints[alert.fingerprint] = fp_entry
        state.outcomes[outcome] += 1
        emitted: list[IncidentEvent] = []
        for event in alert_events:
            group_entry, incident_events = group(state.groups.get(event.correlation_key), event, position, now)
            state.groups[event.correlation_key] = group_entry
            emitted.extend(incident_events)
        return state, emitted
