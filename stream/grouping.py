"""The grouping stage's shell: `alert-events` -> table `groups` -> `incident-events`.

A record holds one input (the previous version's records, people's commands, ticks) or many
(`GroupInputBatch`, the dedup stage's events of one partition); the stage takes the records that arrived
together (stream/barrier.py). Items are folded through the pure stage (`correlation.grouping.group`) in order,
each at its own position; each correlation key's entry is loaded once and saved once per batch of records. Incident events and decisions are packed per partition (stream/outbox.py);
a release (GRP-25) goes back to the dedup stage on the alert's own `alerts` partition.

Time: a timer sends a `Tick` to each of this worker's `alert-events` partitions that has an entry due, so
time-driven transitions (group_wait, resolve_timeout) happen inside the stream, in order with everything
else, and replay alike.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from adapters.change_store import ChangeStore
from adapters.entries import DueIndex, Entries
from adapters.logs import context as log_context
from adapters.metrics import INCIDENT_EVENTS
from correlation.decisions import after_group
from correlation.grouping import GroupState, attach_suspects, change_scopes, group, released
from correlation.rules import Rules
from schemas import AlertRelease, IncidentEvent, IncidentEventKind, Tick
from schemas.batch import group_inputs, position
from stream.barrier import Barrier
from stream.dedup import event_time
from stream.outbox import Outbox, PartitionCounts

log = logging.getLogger("firebreak.worker")

LOGGED_KINDS = {
    IncidentEventKind.opened,
    IncidentEventKind.acknowledged,
    IncidentEventKind.resolved,
    IncidentEventKind.reopened,
    IncidentEventKind.problem_detected,
    IncidentEventKind.merged,
    IncidentEventKind.alerts_split,
}


class GroupStage:
    def __init__(
        self,
        entries: Entries[GroupState],
        rules: Rules,
        changes: ChangeStore,
        barrier: Barrier,
        counts: PartitionCounts,
        app: Any,
        decisions: bool,
    ) -> None:
        self.entries = entries
        self.due_index = DueIndex(entries)
        self.rules = rules
        self.changes = changes
        self.barrier = barrier
        self.counts = counts
        self.app = app
        self.decisions = decisions

    def due_partitions(self, now: datetime) -> set[int]:
        """Partitions of `alert-events` with an entry due at `now` (the tick timer sends each a Tick)."""
        return {partition for _, partition in self.due_index.due(now)}

    async def handle(self, events: list[Any]) -> None:
        """The records Faust handed over together (any partitions of `alert-events`), each record's items in
        order; a tick applies to the due entries of its own partition."""
        # key -> (stored, current, a record of its partition: table writes go to that partition)
        work: dict[str, tuple[GroupState | None, GroupState | None, Any]] = {}
        outbox = Outbox(self.app, self.counts)
        for event in events:
            items = await self.barrier.decode("group", event, group_inputs)
            if items is None:
                continue
            message = event.message
            now = event_time(event)
            for index, item in enumerate(items):
                at = position(message.offset, index)
                if isinstance(item, Tick):
                    keys = [key for key, partition in list(self.due_index.due(now)) if partition == message.partition]
                else:
                    keys = [item.correlation_key]
                for key in keys:
                    stored, entry = work[key][:2] if key in work else (self.entries.get(key),) * 2
                    try:
                        updated, outputs = await self.apply(key, entry, item, at, now, message.partition)
                    except Exception as exc:  # noqa: BLE001 - this item alone to dead-letter; the others go on
                        await self.barrier.item_failed("group", event, index, item.model_dump_json().encode(), exc)
                        continue
                    if updated is not entry:
                        work[key] = (stored, updated, event)
                    if self.decisions:
                        for decision in after_group(item, entry, updated, outputs, self.rules, now):
                            outbox.add("decisions", key, decision.model_dump_json().encode())
                    self.emit(outputs, outbox)
        await outbox.flush()  # outputs first, then state (see stream/dedup.py)
        if outbox.refused:
            await self.barrier.outputs_refused("group", events[0], outbox.refused)
        for key, (stored, current, source_event) in work.items():
            if current is not None and current is not stored:
                self.entries.set(key, current, source_event)

    async def apply(
        self, key: str, entry: GroupState | None, item: Any, at: int, now: datetime, partition: int
    ) -> tuple[GroupState | None, list[IncidentEvent]]:
        """One input through the pure stage, with the suspect changes of any incident it opened (GRP-18)."""
        updated, outputs = group(entry, item, at, now, self.rules, partition)
        fresh = updated is not None and updated is not entry  # not a redelivery: those re-emit stored events
        for incident, scope in change_scopes(updated, outputs, self.rules) if fresh else []:
            assert updated is not None
            try:
                recent = await self.changes.between(scope, now - self.rules.policies.change_window, now)
            except RedisError as exc:
                log.warning(
                    "change lookup for %s failed (%s): no suspects recorded",
                    incident,
                    exc,
                    extra=log_context(incident_id=incident, correlation_key=key),
                )
                recent = []
            updated, more = attach_suspects(updated, incident, recent, now, self.rules)
            outputs = [*outputs, *more]
        return updated, outputs

    @staticmethod
    def emit(outputs: list[IncidentEvent], outbox: Outbox) -> None:
        for fp, at, incident_id in released(
            outputs
        ):  # GRP-25: tell the dedup stage, through the fingerprint's partition
            outbox.add(
                "alerts", fp, AlertRelease(fingerprint=fp, at=at, incident_id=incident_id).model_dump_json().encode()
            )
        kinds: Counter[str] = Counter()
        for out in outputs:
            kinds[out.kind.value] += 1
            if out.kind in LOGGED_KINDS:
                log.info(
                    "incident %s %s (%s)%s",
                    out.incident_id,
                    out.kind.value,
                    out.rule,
                    f" by {out.actor}" if out.actor != "firebreak" else "",
                    extra=log_context(incident_id=out.incident_id, correlation_key=out.correlation_key),
                )
            outbox.add("incident-events", out.incident_id, out.model_dump_json().encode())
        for kind, count in kinds.items():
            INCIDENT_EVENTS.labels(kind).inc(count)


def tick_record(now: datetime | None = None) -> bytes:
    """The value of a tick record (sent to one partition, no key)."""
    return Tick(at=now or datetime.now(UTC)).model_dump_json().encode()
