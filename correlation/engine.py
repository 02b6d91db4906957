"""The two stages composed over whole-stream state, for offline use (tests, replay).

The production worker runs the same stage functions one table entry at a time; this module only routes
each input through dedup, then grouping, the way the topics between them would.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from correlation.decisions import after_dedup, after_group
from correlation.dedup import DedupOutcome, FingerprintState, dedup, release
from correlation.grouping import GroupState, attach_suspects, change_scopes, group, released
from correlation.rules import Rules
from correlation.suppression import describe, inhibitor, silenced_by, source_keys
from schemas import Alert, AlertEvent, AlertStatus, ChangeEvent, IncidentCommand, IncidentEvent, Silence, Tick
from schemas.decision import Decision


@dataclass
class State:
    """Per-fingerprint and per-correlation-key state, plus the positions the topics would assign."""

    fingerprints: dict[str, FingerprintState] = field(default_factory=dict)
    groups: dict[str, GroupState] = field(default_factory=dict)
    next_position: int = 0
    outcomes: Counter[DedupOutcome] = field(default_factory=Counter)
    due: list[tuple[datetime, str]] = field(default_factory=list)  # heap of (due_at, key); stale items are skipped
    silences: list[Silence] = field(default_factory=list)
    sources: dict[str, set[str]] = field(default_factory=dict)  # inhibition key -> fingerprints firing there
    changes: list[ChangeEvent] = field(default_factory=list)
    decisions: list[Decision] | None = None  # the decision log, kept only when a list is given

    def take_position(self) -> int:
        self.next_position += 1
        return self.next_position - 1


@dataclass(frozen=True)
class Engine:
    rules: Rules

    def apply(self, state: State, alert: Alert, now: datetime) -> tuple[State, list[IncidentEvent]]:
        """Run one alert through both stages. `state` is updated in place (its entries are immutable) and returned."""
        position = state.take_position()
        inhibit_rules = self.rules.policies.inhibit_rules
        suppressed, source = self.suppression(state, alert.labels, alert.fingerprint, now)
        detail = describe(suppressed, state.silences, source) if state.decisions is not None else None
        fp_entry, alert_events, outcome = dedup(
            state.fingerprints.get(alert.fingerprint), alert, position, now, self.rules, suppressed, detail
        )
        if state.decisions is not None:
            state.decisions.extend(after_dedup(alert, outcome, alert_events, fp_entry, now, position))
        state.fingerprints[alert.fingerprint] = fp_entry
        state.outcomes[outcome] += 1
        for key in source_keys(alert.labels, inhibit_rules):
            members = state.sources.setdefault(key, set())
            (members.add if fp_entry.status is AlertStatus.firing else members.discard)(alert.fingerprint)
        emitted: list[IncidentEvent] = []
        for event in alert_events:
            emitted.extend(self._group(state, event.correlation_key, event, now))
        return state, emitted

    def suppression(
        self, state: State, labels: dict[str, str], fingerprint: str, now: datetime
    ) -> tuple[str | None, str | None]:
        """(`silence:<id>` or `inhibit:<rule>`, the inhibiting alert's fingerprint) for an alert, as the
        worker's `suppression` finds it from its silences and Redis' inhibition sources."""
        suppressed = silenced_by(labels, state.silences, now)
        if suppressed is None and (
            found := inhibitor(labels, fingerprint, self.rules.policies.inhibit_rules, state.sources)
        ):
            return f"inhibit:{found[0]}", found[1]
        return suppressed, None

    def add_silence(self, state: State, silence: Silence) -> State:
        state.silences.append(silence)
        return state

    def add_change(self, state: State, change: ChangeEvent) -> State:
        state.changes.append(change)
        return state

    def command(self, state: State, command: IncidentCommand) -> tuple[State, list[IncidentEvent]]:
        """A person's acknowledge or resolve, applied at the command's own time. Alerts a resolve released
        (GRP-25) are released in the dedup state too, as the worker's `released` records do."""
        events = self._group(state, command.correlation_key, command, command.at)
        for fp, at, _ in released(events):
            entry = release(state.fingerprints.get(fp), state.take_position(), at)
            if entry is not None:
                state.fingerprints[fp] = entry
        return state, events

    def tick(self, state: State, now: datetime) -> tuple[State, list[IncidentEvent]]:
        """Let time pass to `now`: open incidents whose group_wait ended, resolve quiet ones, forget old ones."""
        emitted: list[IncidentEvent] = []
        ticked: set[str] = set()
        while state.due and state.due[0][0] <= now:
            _, key = heapq.heappop(state.due)
            entry = state.groups.get(key)
            # One tick per key per call: a tick makes every transition due by `now` at once.
            if key not in ticked and entry is not None and entry.due_at is not None and entry.due_at <= now:
                ticked.add(key)
                emitted.extend(self._group(state, key, Tick(at=now), now))
        return state, emitted

    def _group(
        self, state: State, key: str, item: AlertEvent | IncidentCommand | Tick, now: datetime
    ) -> list[IncidentEvent]:
        before = state.groups.get(key)
        new_entry, events = group(before, item, state.take_position(), now, self.rules)
        for incident, _ in change_scopes(new_entry, events, self.rules) if new_entry is not None else []:
            assert new_entry is not None
            new_entry, more = attach_suspects(new_entry, incident, state.changes, now, self.rules)
            events = [*events, *more]
        if new_entry is not None:
            state.groups[key] = new_entry
            if new_entry.due_at is not None:
                heapq.heappush(state.due, (new_entry.due_at, key))
        if state.decisions is not None:
            state.decisions.extend(after_group(item, before, new_entry, events, self.rules, now))
        return events
