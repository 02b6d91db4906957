"""The error barrier every stage runs inside: bad records to `dead-letter`, skipped records fetched and
processed, table writes refused for Kafka's metadata retried.

Faust acknowledges and drops an event whose agent raised (RELIABILITY notes), so each record is handled inside
a try: a record that cannot be decoded goes to `dead-letter` whole (`undecodable`); a packed record's item that
fails goes there alone (`processing_failed`, the item's own JSON) and the record's other items go on.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
from pydantic import ValidationError

from adapters.gaps import GapFetcher
from adapters.logs import context as log_context
from adapters.metrics import DEAD_LETTERS, MISROUTED_RECORDS, PARTITION_WAITS, REDIS_WAITS, SKIPPED_RECORDS
from adapters.redis_errors import until_redis_answers

log = logging.getLogger("firebreak.worker")

Handler = Callable[[Any], Awaitable[None]]
BatchHandler = Callable[[list[Any]], Awaitable[None]]
T = TypeVar("T")

# A stage takes the records that arrived together, up to BATCH_RECORDS of them or what came within
# BATCH_WITHIN_SECONDS (Faust's `take_events`): at a moderate rate records are small (a few alerts of one
# partition), and a stage that handled them one by one sent one record per output partition for each.
BATCH_RECORDS = 500
BATCH_WITHIN_SECONDS = 0.005

STAGE_TOPICS = frozenset({"alerts", "alert-events", "incident-events", "changes", "action-results", "notifications"})


def problems_of(exc: ValidationError) -> str:
    """The first five problems of a validation error, each as `field.path: message`."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])


class Barrier:
    """Wraps each stage's handler: one record at a time, in offset order, never raising into Faust.

    `last_seen` is (topic, partition) -> the highest offset handled here; the lag gauge reads it too."""

    def __init__(self, app: faust.App, dead_letter: faust.TopicT, gaps: GapFetcher, app_id: str) -> None:
        self.app = app
        self.dead_letter = dead_letter
        self.gaps = gaps
        self.app_id = app_id
        self.last_seen: dict[tuple[str, int], int] = {}

    def guarded(self, stage: str, topic: str, handle: Handler) -> Callable[[faust.StreamT], Awaitable[None]]:
        """The agent for one stage: per-record error barrier, and the repair of records the stream skipped
        (adapters/gaps.py).

        A record of another topic is not this stage's to judge: faust-streaming has been seen to hand one to
        the wrong agent right after a rebalance. It is counted and left to its own stage, whose gap repair
        fetches it if its stream skipped it; dead-lettering it here would misreport a good record as bad."""

        async def agent(stream: faust.StreamT) -> None:
            async for event in stream.events():
                message = event.message
                if message.topic != topic:
                    MISROUTED_RECORDS.labels(stage).inc()
                    log.warning(
                        "stage %s was handed %s/%s offset %s, a record of another stage; leaving it to that stage",
                        stage,
                        message.topic,
                        message.partition,
                        message.offset,
                    )
                    continue
                previous = self.last_seen.get((message.topic, message.partition))
                if previous is not None and message.offset > previous + 1:
                    await self.repair_gap(stage, handle, message, previous)
                await self.process(stage, handle, event)
                self.last_seen[(message.topic, message.partition)] = max(
                    -1 if previous is None else previous, message.offset
                )

        agent.__name__ = stage
        return agent

    def guarded_batches(
        self, stage: str, topic: str, handle: BatchHandler
    ) -> Callable[[faust.StreamT], Awaitable[None]]:
        """`guarded` for a stage that handles many records at once: the records Faust's `take_events` gives
        (acknowledged only once handled), cut where a gap is repaired, so every partition's records reach the
        stage in offset order."""

        async def agent(stream: faust.StreamT) -> None:
            async for events in stream.take_events(BATCH_RECORDS, BATCH_WITHIN_SECONDS):
                run: list[Any] = []
                for event in events:
                    message = event.message
                    if message.topic != topic:
                        MISROUTED_RECORDS.labels(stage).inc()
                        log.warning(
                            "stage %s was handed %s/%s offset %s, a record of another stage; leaving it to that stage",
                            stage,
                            message.topic,
                            message.partition,
                            message.offset,
                        )
                        continue
                    previous = self.last_seen.get((message.topic, message.partition))
                    if previous is not None and message.offset > previous + 1:
                        if run:
                            await self.process_batch(stage, handle, run)
                            run = []
                        missing = await self.fetch_gap(stage, message, previous)
                        if missing:
                            await self.process_batch(stage, handle, missing)
                        await self.ack_repaired(message.topic, message.partition, previous + 1, message.offset - 1)
                    run.append(event)
                    self.last_seen[(message.topic, message.partition)] = max(
                        -1 if previous is None else previous, message.offset
                    )
                if run:
                    await self.process_batch(stage, handle, run)

        agent.__name__ = stage
        return agent

    async def process_batch(self, stage: str, handle: BatchHandler, events: list[Any]) -> None:
        """Records handled together; if that fails, each again alone (its failure goes to `dead-letter`, the
        others are handled). A record handled twice this way repeats nothing: positions make it a redelivery."""
        try:
            await self.retrying_partitions_mismatch(stage, handle, events)
            return
        except ValidationError as exc:
            if len(events) == 1:
                await self.to_dead_letter(stage, "undecodable", events[0], problems_of(exc), str(exc))
                return
        except Exception as exc:  # noqa: BLE001 - anything else still must not stop the stream
            if len(events) == 1:
                await self.to_dead_letter(stage, "processing_failed", events[0], repr(exc), traceback.format_exc())
                return
            log.warning("stage %s: %d records together failed (%r); handling each alone", stage, len(events), exc)
        for event in events:
            await self.process_batch(stage, handle, [event])

    async def decode(self, stage: str, event: Any, unpack: Callable[[bytes], list[T]]) -> list[T] | None:
        """A record's items, or None when it cannot be decoded (then it went to `dead-letter`)."""
        try:
            return unpack(event.value)
        except ValidationError as exc:
            await self.to_dead_letter(stage, "undecodable", event, problems_of(exc), str(exc))
            return None

    async def process(self, stage: str, handle: Handler, event: Any) -> None:
        try:
            await self.retrying_partitions_mismatch(stage, handle, event)
        except ValidationError as exc:
            await self.to_dead_letter(stage, "undecodable", event, problems_of(exc), str(exc))
        except Exception as exc:  # noqa: BLE001 - anything else still must not stop the stream
            await self.to_dead_letter(stage, "processing_failed", event, repr(exc), traceback.format_exc())

    async def retrying_partitions_mismatch(self, stage: str, handle: Handler, event: Any) -> None:
        """Faust refuses table writes while its metadata shows a changelog with fewer partitions than the
        source (PartitionsMismatch): that is Kafka's state, not the record's fault, so the record is tried
        again rather than dead-lettered. The write is refused before anything is sent, so a retry repeats
        nothing. A real mismatch (a changelog made by hand) stalls the stage with this error in the log."""
        attempt = 0
        while True:
            try:
                return await handle(event)
            except faust.exceptions.PartitionsMismatch as exc:
                wait = min(30.0, 0.5 * 2 ** min(attempt, 6))
                attempt += 1
                PARTITION_WAITS.labels(stage).inc()
                first = event[0] if isinstance(event, list) else event  # a batch: named by its first record
                log.error(
                    "stage %s cannot write its table (%s); retrying %s/%s offset %s in %.1f s. If this persists, "
                    "run `firebreak topics create` and check the changelog topics' partitions",
                    stage,
                    " ".join(str(exc).split()),
                    first.message.topic,
                    first.message.partition,
                    first.message.offset,
                    wait,
                )
                await asyncio.sleep(wait)

    async def fetch_gap(self, stage: str, message: Any, previous: int) -> list[Any]:
        """The records the stream skipped between `previous` and `message` (adapters/gaps.py), counted and logged."""
        missing = await self.gaps.fetch(message.topic, message.partition, previous + 1, message.offset)
        SKIPPED_RECORDS.labels(stage).inc(message.offset - previous - 1)
        log.warning(
            "stage %s: the stream skipped %s/%s offsets %d..%d; processing the %d fetched first",
            stage,
            message.topic,
            message.partition,
            previous + 1,
            message.offset - 1,
            len(missing),
        )
        return list(missing)

    async def repair_gap(self, stage: str, handle: Handler, message: Any, previous: int) -> None:
        for skipped in await self.fetch_gap(stage, message, previous):
            await self.process(stage, handle, skipped)
        await self.ack_repaired(message.topic, message.partition, previous + 1, message.offset - 1)

    async def ack_repaired(self, topic: str, partition: int, first: int, last: int) -> None:
        """Let Faust commit past records the repair processed. Faust never saw them, and it commits only up to
        the first offset it has not acked: without this the partition's commit stays behind the gap until
        the next rebalance, which then redelivers everything since. Faust's own gap bookkeeping
        (`Consumer._add_gap`, used for gaps it notices itself) is the one way in."""
        add_gap = getattr(self.app.consumer, "_add_gap", None)
        if add_gap is None:
            log.warning(
                "this faust version has no Consumer._add_gap: offsets %s/%s %d..%d stay uncommitted "
                "until the next rebalance",
                topic,
                partition,
                first,
                last,
            )
            return
        await add_gap(faust.types.TP(topic, partition), first, last)

    async def forget_revoked(self, revoked: set[faust.types.TP]) -> None:
        # Another worker processes these meanwhile: coming back to a later offset is not a skip.
        for tp in revoked:
            self.last_seen.pop((tp.topic, tp.partition), None)

    async def baseline_assigned(self, assigned: set[faust.types.TP]) -> None:
        """Start gap detection at the group's committed offsets: faust-streaming has been seen to start a
        partition it just got past them, and without a baseline that first skip goes unnoticed."""
        mine = [(tp.topic, tp.partition) for tp in assigned if tp.topic in STAGE_TOPICS]
        try:
            points = await self.gaps.resume_points(self.app_id, mine)
        except Exception as exc:  # noqa: BLE001 - detection of later gaps still works; say what is missing
            log.warning(
                "could not read committed offsets for %d partitions (%s); gaps at their start go unnoticed",
                len(mine),
                exc,
            )
            return
        for key, offset in points.items():
            self.last_seen.setdefault(key, offset - 1)

    async def to_dead_letter(
        self,
        stage: str,
        reason: str,
        event: Any,
        summary: str,
        detail: str,
        value: bytes | None = None,
        item: int | None = None,
    ) -> None:
        """Send a record (or, with `value` and `item`, one item of a packed record) to `dead-letter` with the
        stage, the reason, the error and where it came from (`topic/partition/offset`, `#item` for an item)."""
        DEAD_LETTERS.labels(stage, reason).inc()
        message = event.message
        where = f"{message.topic}/{message.partition}/{message.offset}" + (f"#{item}" if item is not None else "")
        log.error(
            "dead-letter stage=%s reason=%s source=%s: %s",
            stage,
            reason,
            where,
            summary,
            extra=log_context(
                correlation_key=message.key.decode("utf-8", "replace") if isinstance(message.key, bytes) else None
            ),
        )
        if value is None:
            value = message.value if isinstance(message.value, bytes) else b""
        headers = {
            "stage": stage.encode(),
            "reason": reason.encode(),
            "error": detail[-4000:].encode(),
            "source": where.encode(),
        }
        await self.send_dead_letter(message.key, value, headers)

    async def send_dead_letter(self, key: bytes | None, value: bytes, headers: dict[str, bytes]) -> None:
        """To `dead-letter`, never raising: a value Kafka refuses (too large) goes without it, its size and the
        refusal in a `value_omitted` header (the record itself stays at its `source`); if even that fails, the
        error is logged and the stream goes on."""
        try:
            await self.dead_letter.send(key=key, value=value, headers=headers)
            return
        except Exception as exc:  # noqa: BLE001 - a dead-letter that fails must not stop the stage
            headers = {**headers, "value_omitted": f"{len(value)} bytes, refused: {exc!r}"[:500].encode()}
        try:
            await self.dead_letter.send(key=key, value=b"", headers=headers)
        except Exception as exc:  # noqa: BLE001
            log.critical(
                "could not write to dead-letter (%r); source %s",
                exc,
                headers.get("source", b"").decode("utf-8", "replace"),
            )

    async def outputs_refused(self, stage: str, event: Any, refused: list[tuple[str, bytes, bytes]]) -> None:
        """Outputs too large for any Kafka record (`Outbox.refused`): each to `dead-letter`, as its item."""
        for topic, key, value in refused:
            DEAD_LETTERS.labels(stage, "output_too_large").inc()
            message = event.message
            where = f"{message.topic}/{message.partition}/{message.offset}"
            log.error(
                "dead-letter stage=%s reason=output_too_large source=%s: a %d-byte %s item is larger than a "
                "record may be",
                stage,
                where,
                len(value),
                topic,
            )
            await self.send_dead_letter(
                key,
                value,
                {
                    "stage": stage.encode(),
                    "reason": b"output_too_large",
                    "source": where.encode(),
                    "error": f"{len(value)} bytes for {topic}: larger than a Kafka record may be".encode(),
                },
            )

    async def item_failed(self, stage: str, event: Any, index: int, value: bytes, exc: BaseException) -> None:
        """One item of a packed record failed: it alone goes to `dead-letter`; the caller goes on."""
        await self.to_dead_letter(
            stage,
            "processing_failed",
            event,
            repr(exc),
            "".join(traceback.format_exception(exc)),
            value=value,
            item=index,
        )


async def with_redis_retries(write: Callable[[], Awaitable[T]]) -> T:
    """Retry a Redis write until Redis answers. The stage waits (its records stay on Kafka, lag grows) rather
    than skip an event: an event skipped here would leave a hole in the read model, and a run or a page it
    should have started would never happen. Any other Redis error (WRONGTYPE, a script error) is a fault of the
    write: it propagates, and the record goes to dead-letter."""

    def waiting(exc: Exception, wait: float, attempt: int) -> None:
        REDIS_WAITS.inc()
        log.warning("Redis unavailable (%s); the stage waits %.1f s and retries (attempt %d)", exc, wait, attempt)

    return await until_redis_answers(write, waiting)
