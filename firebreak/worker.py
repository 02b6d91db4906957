"""The Faust worker: a thin shell that loads table entries, calls the pure stages, saves, and sends.

Agents (each at concurrency 1, so offsets are never committed past an event still in work):
- `dedup`   on `alerts` (key fingerprint), table `fingerprints`  -> `alert-events` (key correlation key)
- `group`   on `alert-events`,              table `groups`        -> `incident-events` (key incident id)
- `project` on `incident-events`                                  -> Redis read model
- `changes` on `changes`                                          -> Redis, for change suspects

Silences (cached from Redis every few seconds) and inhibition sources (Redis sets) are looked up here and
handed to the pure dedup stage as `suppressed_by`; recent changes are looked up when an incident opens.

`alert-events` also carries people's commands (ack/resolve, from the API) and ticks: a timer sends a tick to
each of this worker's `alert-events` partitions that has an entry due, so time-driven transitions
(group_wait, resolve_timeout) happen inside the stream, in order with everything else, and replay alike.

A record that cannot be decoded or processed goes to `dead-letter` with the reason; the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import faust
import redis.asyncio as aioredis
from prometheus_client import start_http_server
from pydantic import TypeAdapter, ValidationError

from redis.exceptions import RedisError

from correlation.dedup import FingerprintState, dedup
from correlation.grouping import GroupState, attach_suspects, change_scopes, group
from correlation.suppression import inhibited_by, silenced_by, source_keys
from firebreak.change_store import ChangeStore
from firebreak.inhibition_store import InhibitionStore
from firebreak.gaps import GapFetcher
from firebreak.metrics import ALERTS_PROCESSED, DEAD_LETTERS, INCIDENT_EVENTS, READ_MODEL_WRITES, SKIPPED_RECORDS, STATE_RESETS
from firebreak.readmodel import IncidentStore
from firebreak.settings import Settings
from firebreak.silence_store import SilenceStore
from schemas import Alert, AlertEvent, AlertStatus, ChangeEvent, GroupInput, IncidentEvent, Silence, Tick

log = logging.getLogger("firebreak.worker")


READ_MODEL_ATTEMPTS = 5  # about 8 s of retries for a Redis blip before the event is dead-lettered


def _raw_schema() -> faust.Schema:
    """Topic records stay bytes in Faust; pydantic parses them at our edge (bad ones go to dead-letter).

    A fresh instance per topic: Faust mutates a schema it is given.
    """
    return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


GROUP_INPUT: TypeAdapter[GroupInput] = TypeAdapter(GroupInput)


def _event_time(event: faust.types.EventT) -> datetime:
    return datetime.fromtimestamp(event.message.timestamp, tz=timezone.utc)


S = TypeVar("S", FingerprintState, GroupState)


def _load(model: type[S], stored: object, table: str, key: str) -> S | None:
    """A table entry, or None (start afresh) if it cannot be read: one bad entry must not block its key forever."""
    if not stored:
        return None
    try:
        return model.model_validate(stored)
    except ValidationError as exc:
        STATE_RESETS.labels(table).inc()
        log.error("table %s entry %r unreadable, starting it afresh: %s", table, key, exc.errors()[0]["msg"])
        return None


def _is_due(stored: dict[str, object], now: datetime) -> bool:
    """Whether a stored group entry wants a tick, read without parsing the whole entry."""
    due_at = stored.get("due_at")
    return isinstance(due_at, str) and datetime.fromisoformat(due_at) <= now


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app and its agents; nothing connects until the worker starts."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        broker_session_timeout=settings.worker_session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_seconds / 3),
        producer_acks=-1,
        web_enabled=False,
        processing_guarantee="at_least_once",
    )
    rules = settings.load_rules()
    alerts = app.topic("alerts", schema=_raw_schema())
    alert_events = app.topic("alert-events", schema=_raw_schema())
    incident_events = app.topic("incident-events", schema=_raw_schema())
    changes_topic = app.topic("changes", schema=_raw_schema())
    dead_letter = app.topic("dead-letter", schema=_raw_schema())
    # Table entries: str keys, JSON-object values (the stage state models dumped in JSON mode). No value_type:
    # Faust would call `from_data` on it during changelog recovery, which only its own Records have.
    fingerprints = app.Table("fingerprints", default=None, key_type=str)
    groups = app.Table("groups", default=None, key_type=str)
    redis_client = aioredis.Redis.from_url(settings.redis_url)
    store = IncidentStore(redis_client, settings.redis_prefix)
    silence_store = SilenceStore(redis_client, settings.redis_prefix)
    inhibition = InhibitionStore(redis_client, settings.redis_prefix)
    change_store = ChangeStore(redis_client, settings.redis_prefix)
    inhibit_rules = rules.policies.inhibit_rules
    silences: list[Silence] = []  # this worker's copy, refreshed by the timer below

    @app.timer(2.0)
    async def refresh_silences() -> None:
        try:
            silences[:] = await silence_store.current(datetime.now(timezone.utc))
        except RedisError as exc:
            # Fail open for paging: keep the last known silences rather than silence everything or nothing.
            log.warning("could not refresh silences from Redis (%s); keeping %d known", exc, len(silences))

    async def to_dead_letter(stage: str, reason: str, event: faust.types.EventT, summary: str, detail: str) -> None:
        DEAD_LETTERS.labels(stage, reason).inc()
        message = event.message
        log.error("dead-letter stage=%s reason=%s topic=%s partition=%s offset=%s: %s",
                  stage, reason, message.topic, message.partition, message.offset, summary)
        await dead_letter.send(
            key=message.key,
            value=message.value if isinstance(message.value, bytes) else b"",
            headers={
                "stage": stage.encode(),
                "reason": reason.encode(),
                "error": detail[-4000:].encode(),
                "source": f"{message.topic}/{message.partition}/{message.offset}".encode(),
            },
        )

    gaps = GapFetcher(settings.kafka_bootstrap)
    last_seen: dict[tuple[str, int], int] = {}  # (topic, partition) -> highest offset this process handled

    @app.on_partitions_revoked.connect
    async def forget_revoked(app: faust.App, revoked: set[faust.types.TP], **kwargs: Any) -> None:
        # Another worker processes these meanwhile: coming back to a later offset is not a skip.
        for tp in revoked:
            last_seen.pop((tp.topic, tp.partition), None)

    def guarded(stage: str, handle: Callable[[Any], Awaitable[None]]) -> Callable[[faust.StreamT], Awaitable[None]]:
        """Per-event error barrier (Faust would ack and silently drop an event whose agent raised), and the
        repair of records the stream skipped (firebreak/gaps.py)."""

        async def process(event: Any) -> None:
            try:
                await handle(event)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
                await to_dead_letter(stage, "undecodable", event, problems, str(exc))
            except Exception as exc:  # noqa: BLE001 - anything else still must not stop the stream
                await to_dead_letter(stage, "processing_failed", event, repr(exc), traceback.format_exc())

        async def agent(stream: faust.StreamT) -> None:
            async for event in stream.events():
                message = event.message
                previous = last_seen.get((message.topic, message.partition))
                if previous is not None and message.offset > previous + 1:
                    missing = await gaps.fetch(message.topic, message.partition, previous + 1, message.offset)
                    SKIPPED_RECORDS.labels(stage).inc(message.offset - previous - 1)
                    log.warning("stage %s: the stream skipped %s/%s offsets %d..%d; processing the %d fetched first",
                                stage, message.topic, message.partition, previous + 1, message.offset - 1, len(missing))
                    for skipped in missing:
                        await process(skipped)
                await process(event)
                last_seen[(message.topic, message.partition)] = max(previous if previous is not None else -1, message.offset)

        agent.__name__ = stage
        return agent

    async def handle_alert(event: faust.types.EventT) -> None:
        alert = Alert.model_validate_json(event.value)
        key = alert.fingerprint
        entry = _load(FingerprintState, fingerprints.get(key), "fingerprints", key)
        now = _event_time(event)
        suppressed = silenced_by(alert.labels, silences, now)
        if suppressed is None and inhibit_rules:
            targets = [k for r in inhibit_rules if (k := r.target_key(alert.labels)) is not None]
            try:
                sources = await inhibition.sources(targets)
            except RedisError as exc:
                log.warning("inhibition lookup failed (%s): treating the alert as not inhibited", exc)
                sources = {}
            suppressed = inhibited_by(alert.labels, alert.fingerprint, inhibit_rules, sources)
        new_entry, outputs, outcome = dedup(entry, alert, event.message.offset, now, rules, suppressed)
        ALERTS_PROCESSED.labels(outcome.value).inc()
        if new_entry is not entry:
            fingerprints[key] = new_entry.model_dump(mode="json")
            try:
                await inhibition.update(source_keys(alert.labels, inhibit_rules), alert.fingerprint,
                                        new_entry.status is AlertStatus.firing)
            except RedisError as exc:
                log.warning("could not record inhibition source %s (%s)", alert.fingerprint, exc)
        for out in outputs:
            await alert_events.send(key=out.correlation_key.encode(), value=out.model_dump_json().encode())

    async def emit(outputs: list[IncidentEvent]) -> None:
        for out in outputs:
            INCIDENT_EVENTS.labels(out.kind.value).inc()
            await incident_events.send(key=out.incident_id.encode(), value=out.model_dump_json().encode())

    async def apply_group(key: str, entry: GroupState | None, item: GroupInput, event: faust.types.EventT) -> list[IncidentEvent]:
        message = event.message
        now = _event_time(event)
        new_entry, outputs = group(entry, item, message.offset, now, rules, message.partition)
        fresh = new_entry is not None and new_entry is not entry  # not a redelivery: those re-emit stored events
        for incident, scope in change_scopes(new_entry, outputs, rules) if fresh else []:
            assert new_entry is not None
            try:
                recent = await change_store.between(scope, now - rules.policies.change_window, now)
            except RedisError as exc:
                log.warning("change lookup for %s failed (%s): no suspects recorded", incident, exc)
                recent = []
            new_entry, more = attach_suspects(new_entry, incident, recent, now, rules)
            outputs = [*outputs, *more]
        if new_entry is not None and new_entry is not entry:
            groups[key] = new_entry.model_dump(mode="json")
        return outputs

    async def handle_group_input(event: faust.types.EventT) -> None:
        item = GROUP_INPUT.validate_json(event.value)
        if isinstance(item, Tick):
            now = _event_time(event)
            for key, stored in list(groups.items()):
                if stored.get("partition") == event.message.partition and _is_due(stored, now):
                    await emit(await apply_group(key, _load(GroupState, stored, "groups", key), item, event))
            return
        key = item.correlation_key
        await emit(await apply_group(key, _load(GroupState, groups.get(key), "groups", key), item, event))

    async def handle_incident_event(event: faust.types.EventT) -> None:
        incident_event = IncidentEvent.model_validate_json(event.value)
        for attempt in range(READ_MODEL_ATTEMPTS):
            try:
                result = await store.apply(incident_event)
                break
            except RedisError as exc:
                if attempt == READ_MODEL_ATTEMPTS - 1:
                    raise  # dead-lettered; `firebreak readmodel rebuild` restores it once Redis is back
                log.warning("read model write failed (%s); retrying in %.1f s", exc, 0.5 * 2**attempt)
                await asyncio.sleep(0.5 * 2**attempt)
        READ_MODEL_WRITES.labels(result.value).inc()

    app.agent(alerts, name="dedup", concurrency=1)(guarded("dedup", handle_alert))
    app.agent(alert_events, name="group", concurrency=1)(guarded("group", handle_group_input))

    @app.timer(settings.tick_interval_seconds)
    async def tick() -> None:
        """Send a tick to each of this worker's alert-events partitions that has an entry due now."""
        now = datetime.now(timezone.utc)
        mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == "alert-events"}
        due = {stored.get("partition") for stored in list(groups.values()) if _is_due(stored, now)} & mine
        for partition in sorted(due):
            await alert_events.send(value=Tick(at=now).model_dump_json().encode(), partition=partition)

    app.agent(incident_events, name="project", concurrency=1)(guarded("project", handle_incident_event))

    async def handle_change(event: faust.types.EventT) -> None:
        await change_store.record(ChangeEvent.model_validate_json(event.value))

    app.agent(changes_topic, name="changes", concurrency=1)(guarded("changes", handle_change))
    return app


def run(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM."""
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr="127.0.0.1")
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
