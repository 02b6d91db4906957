"""The dedup stage's shell: `alerts` -> table `fingerprints` -> `alert-events`.

One record holds one alert (the previous version's records, and releases) or many (`AlertBatch`, from ingest's
group commit); the stage takes the records that arrived together (stream/barrier.py). Their items are folded
through the pure rule (`correlation.dedup.dedup`) in order, each at its own position; each fingerprint's entry
is loaded once and saved once per batch of records, and a pure re-send is only counted
in memory (`correlation.dedup.counted_only`, adapters/entries.py). Inhibition sources are read and written
once per record, and the outputs and decisions are packed per partition (stream/outbox.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from adapters.entries import Entries
from adapters.metrics import ALERTS_PROCESSED, ALERTS_SUPPRESSED
from correlation.decisions import after_dedup
from correlation.dedup import FingerprintState, counted_only, dedup, release
from correlation.rules import Rules
from correlation.suppression import describe
from schemas import AlertRelease, AlertStatus
from schemas.batch import alert_records, position
from schemas.decision import Decision
from stream.barrier import Barrier
from stream.outbox import Outbox, PartitionCounts
from stream.suppression import Suppression

log = logging.getLogger("firebreak.worker")


def event_time(event: Any) -> datetime:
    """When Kafka received the record: the stages' `now`, so replay and the worker read time alike."""
    return datetime.fromtimestamp(event.message.timestamp, tz=UTC)


class DedupStage:
    def __init__(
        self,
        entries: Entries[FingerprintState],
        rules: Rules,
        suppression: Suppression,
        barrier: Barrier,
        counts: PartitionCounts,
        app: Any,
        decisions: bool,
    ) -> None:
        self.entries = entries
        self.rules = rules
        self.suppression = suppression
        self.barrier = barrier
        self.counts = counts
        self.app = app
        self.decisions = decisions

    async def handle(self, events: list[Any]) -> None:
        """The records Faust handed over together (any partitions of `alerts`), each record's items in order."""
        decoded = [
            (event, items)
            for event in events
            if (items := await self.barrier.decode("dedup", event, alert_records)) is not None
        ]
        sources = await self.suppression.sources(
            [i.labels for _, items in decoded for i in items if not isinstance(i, AlertRelease)]
        )
        # fingerprint -> (stored, current, a record of its partition: table writes go to that partition)
        work: dict[str, tuple[FingerprintState | None, FingerprintState | None, Any]] = {}
        counted: set[str] = set()  # fingerprints whose every change in these records was counted-only
        source_changes: dict[tuple[str, str], bool] = {}
        outbox = Outbox(self.app, self.counts)
        outcomes: Counter[str] = Counter()
        suppressed_kinds: Counter[str] = Counter()
        partitions: dict[int, Any] = {}
        for event, items in decoded:
            message = event.message
            now = event_time(event)
            partitions[message.partition] = event
            for index, item in enumerate(items):
                at = position(message.offset, index)
                fingerprint = item.fingerprint
                stored, entry = work[fingerprint][:2] if fingerprint in work else (self.entries.get(fingerprint),) * 2
                try:
                    if isinstance(item, AlertRelease):
                        updated = release(entry, at, item.at)
                        if updated is not None and updated is not entry:
                            work[fingerprint] = (stored, updated, event)
                            counted.discard(fingerprint)
                        continue
                    suppressed, source = self.suppression.of(item.labels, fingerprint, now, sources)
                    detail = describe(suppressed, self.suppression.silences, source) if self.decisions else None
                    updated, outputs, outcome = dedup(entry, item, at, now, self.rules, suppressed, detail)
                except Exception as exc:  # noqa: BLE001 - this item alone to dead-letter; the others go on
                    await self.barrier.item_failed(
                        "dedup", event, index, item.model_dump_json(by_alias=True).encode(), exc
                    )
                    continue
                outcomes[outcome.value] += 1
                if suppressed and outputs:
                    suppressed_kinds[suppressed.split(":", 1)[0]] += 1
                if self.decisions:
                    decided: list[Decision] = after_dedup(item, outcome, outputs, updated, now, at)
                    for decision in decided:
                        outbox.add("decisions", fingerprint, decision.model_dump_json().encode())
                if updated is not entry:
                    if fingerprint not in work or fingerprint in counted:
                        if counted_only(entry, updated, outputs, self.rules):
                            counted.add(fingerprint)
                        else:
                            counted.discard(fingerprint)
                    work[fingerprint] = (stored, updated, event)
                    if outputs or entry is None or entry.status is not updated.status:
                        self.suppression.note_source(
                            sources, item.labels, fingerprint, updated.status is AlertStatus.firing, source_changes
                        )
                for out in outputs:
                    outbox.add("alert-events", out.correlation_key, out.model_dump_json().encode())
        # Outputs first, then state: a crash between them redelivers the records, which the unchanged entries take
        # as new and emit again (downstream stages take a repeat once); the other order could lose the outputs.
        await outbox.flush()
        if outbox.refused:
            await self.barrier.outputs_refused("dedup", events[0], outbox.refused)
        for fingerprint, (stored, current, source_event) in work.items():
            if current is None or current is stored:
                continue
            if fingerprint in counted:
                self.entries.touch(fingerprint, current, source_event.message.partition)
            else:
                self.entries.set(fingerprint, current, source_event)
        for partition, source_event in partitions.items():
            self.entries.flush_due(partition, source=source_event)
        await self.suppression.save(source_changes)
        for outcome_name, count in outcomes.items():
            ALERTS_PROCESSED.labels(outcome_name).inc(count)
        for kind, count in suppressed_kinds.items():
            ALERTS_SUPPRESSED.labels(kind).inc(count)
