"""The Faust worker: a thin shell that loads table entries, calls the pure stages, saves, and sends.

Agents (each at concurrency 1, so offsets are never committed past an event still in work):
- `dedup`   on `alerts` (key fingerprint), table `fingerprints`  -> `alert-events` (key correlation key)
- `group`   on `alert-events`,              table `groups`        -> `incident-events` (key incident id)
- `project` on `incident-events`                                  -> Redis read model
- `changes` on `changes`                                          -> Redis, for change suspects
- `results` on `action-results`                                   -> Redis, the incident timeline's actions
- `deliveries` on `notifications`                                 -> Redis, the incident timeline's pages

The dedup and grouping stages also write what they decided about each alert to `decisions`
(correlation/decisions.py), as does paging (routes chosen, pages sent, pages held or not sent). A plain
batch consumer beside the stages folds that topic into Redis for `explain` (firebreak/decision_sink.py).

With runbooks configured, `project` also creates a run for each runbook an incident event triggers, and a
background task (actions/executor.py) drives the runs. With escalation policies configured, `project`
starts, stops or updates the incident's escalation in Redis and a background task (actions/pager.py)
pages. Actions and pages never run inside a stream agent.

Silences (cached from Redis every few seconds) and inhibition sources (Redis sets) are looked up here and
handed to the pure dedup stage as `suppressed_by`; recent changes are looked up when an incident opens.

`alert-events` also carries people's commands (ack/resolve, from the API) and ticks: a timer sends a tick to
each of this worker's `alert-events` partitions that has an entry due, so time-driven transitions
(group_wait, resolve_timeout) happen inside the stream, in order with everything else, and replay alike.

A record that cannot be decoded or processed goes to `dead-letter` with the reason; the stream goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

import faust
import redis.asyncio as aioredis
from prometheus_client import start_http_server
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import RedisError

from correlation.decisions import after_dedup, after_group
from correlation.dedup import FingerprintState, dedup, release
from correlation.grouping import GroupState, attach_suspects, change_scopes, group, released
from correlation.suppression import describe, inhibitor, silenced_by, source_keys
from actions.escalation import firing_alerts, muted_by
from actions.runtime import Outbound, build_executor, build_pager
from firebreak.action_log import ActionLog, NotificationLog
from firebreak.change_store import ChangeStore
from firebreak.decision_log import DecisionLog, from_delivery
from firebreak.decision_sink import DecisionSink
from firebreak.entries import DueIndex, Entries
from firebreak.gaps import GapFetcher
from firebreak.inhibition_store import InhibitionStore
from firebreak.kafka_auth import aiokafka_kwargs, faust_credentials
from firebreak.logs import context as log_context, dict_config
from firebreak.rebuild import count_events, rebuild
from firebreak.redis_errors import REDIS_UNAVAILABLE, redis_backoff
from firebreak.metrics import (
    ALERT_TO_INCIDENT,
    ALERTS_PROCESSED,
    ALERTS_SUPPRESSED,
    CONSUMER_LAG,
    DEAD_LETTERS,
    INCIDENT_EVENTS,
    MISROUTED_RECORDS,
    PARTITION_WAITS,
    OPEN_INCIDENTS,
    READ_MODEL_REBUILDS,
    READ_MODEL_WRITES,
    REDIS_WAITS,
    SKIPPED_RECORDS,
    TIME_TO_ACKNOWLEDGE,
    TIME_TO_RESOLVE,
    WORKER,
)
from firebreak.readmodel import ApplyResult
from firebreak.readmodel import IncidentStore
from firebreak.settings import Settings
from firebreak.topics import create_topics
from firebreak.silence_store import SilenceStore
from schemas import (
    Alert,
    AlertRelease,
    AlertStatus,
    ChangeEvent,
    CommandAction,
    GroupInput,
    Incident,
    IncidentCommand,
    IncidentEvent,
    IncidentEventKind,
    Silence,
    Tick,
)
from schemas.decision import Decision, DecisionBatch
from schemas.notification import Delivery
from schemas.runbook import ActionResult, Trigger

log = logging.getLogger("firebreak.worker")


LOGGED_KINDS = {IncidentEventKind.opened, IncidentEventKind.acknowledged, IncidentEventKind.resolved,
                IncidentEventKind.reopened, IncidentEventKind.problem_detected}
STAGE_TOPICS = frozenset({"alerts", "alert-events", "incident-events", "changes", "action-results", "notifications"})
REBUILD_LEASE_SECONDS = 600  # a rebuild not finished by then (its worker died) is started again by another
# Redis errors that mean "not reachable now" (waited out); other Redis errors are faults of the write itself.


def _raw_schema() -> faust.Schema:
    """Topic records stay bytes in Faust; pydantic parses them at our edge (bad ones go to dead-letter).

    A fresh instance per topic: Faust mutates a schema it is given.
    """
    return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


GROUP_INPUT: TypeAdapter[GroupInput] = TypeAdapter(GroupInput)


def _event_time(event: faust.types.EventT) -> datetime:
    return datetime.fromtimestamp(event.message.timestamp, tz=timezone.utc)


T = TypeVar("T")


Handler = Callable[[Any], Awaitable[None]]


class Worker:
    """The stages' shell around one Faust app: each handler loads a table entry, calls a pure stage,
    saves the entry and sends what the stage emitted. Nothing is built until `create_app` makes one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules = settings.load_rules()
        self.app = faust.App(
            settings.app_id,
            broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
            store="memory://",
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication_factor,
            broker_session_timeout=settings.worker_session_timeout_seconds,
            broker_heartbeat_interval=min(3.0, settings.worker_session_timeout_seconds / 3),
            table_standby_replicas=settings.worker_standby_replicas,
            producer_acks=-1,
            web_enabled=False,
            processing_guarantee="at_least_once",
            broker_credentials=faust_credentials(settings),
        )
        app = self.app
        self.alerts = app.topic("alerts", schema=_raw_schema())
        self.alert_events = app.topic("alert-events", schema=_raw_schema())
        self.incident_events = app.topic("incident-events", schema=_raw_schema())
        self.changes = app.topic("changes", schema=_raw_schema())
        self.action_results = app.topic("action-results", schema=_raw_schema())
        self.notifications = app.topic("notifications", schema=_raw_schema())
        self.decisions = app.topic("decisions", schema=_raw_schema())  # written here; read by `decision_sink`
        self.dead_letter = app.topic("dead-letter", schema=_raw_schema())
        # Table entries: str keys, the stage state models' JSON as bytes (firebreak/entries.py).
        self.fingerprints = Entries(app.Table("fingerprints", default=None, key_type=str, value_type=bytes),
                                    FingerprintState, "fingerprints")
        self.groups = Entries(app.Table("groups", default=None, key_type=str, value_type=bytes), GroupState, "groups")
        self.due_groups = DueIndex(self.groups)
        redis_client = aioredis.Redis.from_url(settings.redis_url)
        self.store = IncidentStore(redis_client, settings.redis_prefix)
        self.silence_store = SilenceStore(redis_client, settings.redis_prefix)
        self.inhibition = InhibitionStore(redis_client, settings.redis_prefix)
        self.change_store = ChangeStore(redis_client, settings.redis_prefix)
        self.action_log = ActionLog(redis_client, settings.redis_prefix)
        self.notification_log = NotificationLog(redis_client, settings.redis_prefix)
        self.decision_log = DecisionLog.from_settings(redis_client, settings)
        outbound = Outbound.from_settings(settings)
        self.executor = build_executor(settings, outbound, redis_client, self.store, self.rules.topology,
                                       self.publish_result, self.resolve_incident)
        self.pager = build_pager(settings, outbound, redis_client, self.store, self.rules.topology, self.publish_delivery,
                                 self.dead_letter_delivery, self.escalated, self.publish_decisions, self.muted)
        self.silences: list[Silence] = []  # this worker's copy, refreshed every 2 s
        self.gaps = GapFetcher(settings.kafka_bootstrap, aiokafka_kwargs(settings))
        self.last_seen: dict[tuple[str, int], int] = {}  # (topic, partition) -> highest offset handled here

        app.agent(self.alerts, name="dedup", concurrency=1)(self.guarded("dedup", "alerts", self.handle_alert))
        app.agent(self.alert_events, name="group", concurrency=1)(self.guarded("group", "alert-events", self.handle_group_input))
        app.agent(self.incident_events, name="project", concurrency=1)(self.guarded("project", "incident-events", self.handle_incident_event))
        app.agent(self.changes, name="changes", concurrency=1)(self.guarded("changes", "changes", self.handle_change))
        app.agent(self.action_results, name="results", concurrency=1)(self.guarded("results", "action-results", self.handle_result))
        app.agent(self.notifications, name="deliveries", concurrency=1)(self.guarded("deliveries", "notifications", self.handle_delivery))
        if settings.decisions_enabled:
            self.decision_sink = DecisionSink(settings, self.decision_log, self.dead_letter_raw)
            app.task(self.decision_sink.run_forever)
        if self.executor is not None:
            app.task(self.executor.run_forever)
        if self.pager is not None:
            app.task(self.pager.run_forever)
        app.on_before_shutdown.connect(self.stop_background)
        app.timer(2.0, name="refresh_silences")(self.refresh_silences)
        app.timer(settings.tick_interval_seconds, name="tick")(self.tick)
        app.timer(10.0, name="report_state")(self.report_state)
        app.timer(5.0, name="guard_read_model")(self.guard_read_model)
        app.on_partitions_revoked.connect(self.forget_revoked)
        app.on_partitions_assigned.connect(self.baseline_assigned)

    # -- the error barrier and the repair of skipped records ------------------------------------------------

    def guarded(self, stage: str, topic: str, handle: Handler) -> Callable[[faust.StreamT], Awaitable[None]]:
        """Per-event error barrier (Faust would ack and silently drop an event whose agent raised), and the
        repair of records the stream skipped (firebreak/gaps.py).

        A record of another topic is not this stage's to judge: faust-streaming has been seen to hand one to
        the wrong agent right after a rebalance. It is counted and left to its own stage, whose gap repair
        fetches it if its stream skipped it; dead-lettering it here would misreport a good record as bad."""

        async def agent(stream: faust.StreamT) -> None:
            async for event in stream.events():
                message = event.message
                if message.topic != topic:
                    MISROUTED_RECORDS.labels(stage).inc()
                    log.warning("stage %s was handed %s/%s offset %s, a record of another stage; leaving it to that stage",
                                stage, message.topic, message.partition, message.offset)
                    continue
                previous = self.last_seen.get((message.topic, message.partition))
                if previous is not None and message.offset > previous + 1:
                    await self.repair_gap(stage, handle, message, previous)
                await self.process(stage, handle, event)
                self.last_seen[(message.topic, message.partition)] = max(-1 if previous is None else previous, message.offset)

        agent.__name__ = stage
        return agent

    async def process(self, stage: str, handle: Handler, event: Any) -> None:
        try:
            await self.retrying_partitions_mismatch(stage, handle, event)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
            await self.to_dead_letter(stage, "undecodable", event, problems, str(exc))
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
                log.error("stage %s cannot write its table (%s); retrying %s/%s offset %s in %.1f s. If this persists, "
                          "run `firebreak topics create` and check the changelog topics' partitions",
                          stage, " ".join(str(exc).split()), event.message.topic, event.message.partition,
                          event.message.offset, wait)
                await asyncio.sleep(wait)

    async def repair_gap(self, stage: str, handle: Handler, message: Any, previous: int) -> None:
        missing = await self.gaps.fetch(message.topic, message.partition, previous + 1, message.offset)
        SKIPPED_RECORDS.labels(stage).inc(message.offset - previous - 1)
        log.warning("stage %s: the stream skipped %s/%s offsets %d..%d; processing the %d fetched first",
                    stage, message.topic, message.partition, previous + 1, message.offset - 1, len(missing))
        for skipped in missing:
            await self.process(stage, handle, skipped)
        await self.ack_repaired(message.topic, message.partition, previous + 1, message.offset - 1)

    async def ack_repaired(self, topic: str, partition: int, first: int, last: int) -> None:
        """Let Faust commit past records the repair processed. Faust never saw them, and it commits only up to
        the first offset it has not acked: without this the partition's commit stays behind the gap until
        the next rebalance, which then redelivers everything since. Faust's own gap bookkeeping
        (`Consumer._add_gap`, used for gaps it notices itself) is the one way in."""
        add_gap = getattr(self.app.consumer, "_add_gap", None)
        if add_gap is None:
            log.warning("this faust version has no Consumer._add_gap: offsets %s/%s %d..%d stay uncommitted "
                        "until the next rebalance", topic, partition, first, last)
            return
        await add_gap(faust.types.TP(topic, partition), first, last)

    async def forget_revoked(self, app: faust.App, revoked: set[faust.types.TP], **kwargs: Any) -> None:
        # Another worker processes these meanwhile: coming back to a later offset is not a skip.
        for tp in revoked:
            self.last_seen.pop((tp.topic, tp.partition), None)

    async def baseline_assigned(self, app: faust.App, assigned: set[faust.types.TP], **kwargs: Any) -> None:
        """Start gap detection at the group's committed offsets: faust-streaming has been seen to start a
        partition it just got past them, and without a baseline that first skip goes unnoticed."""
        mine = [(tp.topic, tp.partition) for tp in assigned if tp.topic in STAGE_TOPICS]
        try:
            points = await self.gaps.resume_points(self.settings.app_id, mine)
        except Exception as exc:  # noqa: BLE001 - detection of later gaps still works; say what is missing
            log.warning("could not read committed offsets for %d partitions (%s); gaps at their start go unnoticed",
                        len(mine), exc)
            return
        for key, offset in points.items():
            self.last_seen.setdefault(key, offset - 1)

    async def to_dead_letter(self, stage: str, reason: str, event: Any, summary: str, detail: str) -> None:
        DEAD_LETTERS.labels(stage, reason).inc()
        message = event.message
        log.error("dead-letter stage=%s reason=%s topic=%s partition=%s offset=%s: %s",
                  stage, reason, message.topic, message.partition, message.offset, summary,
                  extra=log_context(correlation_key=message.key.decode("utf-8", "replace") if isinstance(message.key, bytes) else None))
        await self.dead_letter.send(
            key=message.key,
            value=message.value if isinstance(message.value, bytes) else b"",
            headers={
                "stage": stage.encode(),
                "reason": reason.encode(),
                "error": detail[-4000:].encode(),
                "source": f"{message.topic}/{message.partition}/{message.offset}".encode(),
            },
        )

    # -- dedup --------------------------------------------------------------------------------------------

    async def refresh_silences(self) -> None:
        try:
            self.silences[:] = await self.silence_store.current(datetime.now(timezone.utc))
        except RedisError as exc:
            # Fail open for paging: keep the last known silences rather than silence everything or nothing.
            log.warning("could not refresh silences from Redis (%s); keeping %d known", exc, len(self.silences))

    async def suppression(self, labels: dict[str, str], fingerprint: str, now: datetime) -> tuple[str | None, str | None]:
        """(`silence:<id>` or `inhibit:<rule>`, the inhibiting alert's fingerprint) for an alert, from this
        worker's silences and Redis' sources."""
        suppressed = silenced_by(labels, self.silences, now)
        inhibit_rules = self.rules.policies.inhibit_rules
        if suppressed is None and inhibit_rules:
            targets = [k for r in inhibit_rules if (k := r.target_key(labels)) is not None]
            try:
                sources = await self.inhibition.sources(targets)
            except RedisError as exc:
                log.warning("inhibition lookup failed (%s): treating the alert as not inhibited", exc)
                sources = {}
            found = inhibitor(labels, fingerprint, inhibit_rules, sources)
            if found is not None:
                return f"inhibit:{found[0]}", found[1]
        return suppressed, None

    async def handle_alert(self, event: Any) -> None:
        if AlertRelease.is_one(event.value):
            note = AlertRelease.model_validate_json(event.value)
            entry = self.fingerprints.get(note.fingerprint)
            updated = release(entry, event.message.offset, note.at)
            if updated is not None and updated is not entry:
                self.fingerprints.set(note.fingerprint, updated)
            return
        alert = Alert.model_validate_json(event.value)
        key = alert.fingerprint
        entry = self.fingerprints.get(key)
        now = _event_time(event)
        suppressed, source = await self.suppression(alert.labels, alert.fingerprint, now)
        detail = describe(suppressed, self.silences, source) if self.settings.decisions_enabled else None
        new_entry, outputs, outcome = dedup(entry, alert, event.message.offset, now, self.rules, suppressed, detail)
        if self.settings.decisions_enabled:
            await self.publish_decisions(after_dedup(alert, outcome, outputs, new_entry, now, event.message.offset), key)
        ALERTS_PROCESSED.labels(outcome.value).inc()
        if suppressed and outputs:
            ALERTS_SUPPRESSED.labels(suppressed.split(":", 1)[0]).inc()
        if new_entry is not entry:
            self.fingerprints.set(key, new_entry)
            try:
                await self.inhibition.update(source_keys(alert.labels, self.rules.policies.inhibit_rules),
                                             alert.fingerprint, new_entry.status is AlertStatus.firing)
            except RedisError as exc:
                log.warning("could not record inhibition source %s (%s)", alert.fingerprint, exc)
        for out in outputs:
            await self.publish(self.alert_events, out.correlation_key, out.model_dump_json().encode())

    # -- grouping -----------------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Send a tick to each of this worker's alert-events partitions that has an entry due now."""
        now = datetime.now(timezone.utc)
        mine = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == "alert-events"}
        due = {partition for _, partition in self.due_groups.due(now)} & mine
        for partition in sorted(due):
            await self.alert_events.send(value=Tick(at=now).model_dump_json().encode(), partition=partition)

    async def handle_group_input(self, event: Any) -> None:
        item = GROUP_INPUT.validate_json(event.value)
        if isinstance(item, Tick):
            now = _event_time(event)
            for key, partition in list(self.due_groups.due(now)):
                if partition == event.message.partition:
                    await self.emit(await self.apply_group(key, self.groups.get(key), item, event))
            return
        key = item.correlation_key
        await self.emit(await self.apply_group(key, self.groups.get(key), item, event))

    async def apply_group(self, key: str, entry: GroupState | None, item: GroupInput, event: Any) -> list[IncidentEvent]:
        message = event.message
        now = _event_time(event)
        new_entry, outputs = group(entry, item, message.offset, now, self.rules, message.partition)
        fresh = new_entry is not None and new_entry is not entry  # not a redelivery: those re-emit stored events
        for incident, scope in change_scopes(new_entry, outputs, self.rules) if fresh else []:
            assert new_entry is not None
            try:
                recent = await self.change_store.between(scope, now - self.rules.policies.change_window, now)
            except RedisError as exc:
                log.warning("change lookup for %s failed (%s): no suspects recorded", incident, exc,
                            extra=log_context(incident_id=incident, correlation_key=key))
                recent = []
            new_entry, more = attach_suspects(new_entry, incident, recent, now, self.rules)
            outputs = [*outputs, *more]
        if new_entry is not None and new_entry is not entry:
            self.groups.set(key, new_entry)
        if self.settings.decisions_enabled:
            await self.publish_decisions(after_group(item, entry, new_entry, outputs, self.rules, now), key)
        return outputs

    async def emit(self, outputs: list[IncidentEvent]) -> None:
        for fp, at, incident_id in released(outputs):  # GRP-25: tell the dedup stage, through the fingerprint's partition
            note = AlertRelease(fingerprint=fp, at=at, incident_id=incident_id)
            await self.publish(self.alerts, fp, note.model_dump_json().encode())
        for out in outputs:
            INCIDENT_EVENTS.labels(out.kind.value).inc()
            if out.kind in LOGGED_KINDS:
                log.info("incident %s %s (%s)%s", out.incident_id, out.kind.value, out.rule,
                         f" by {out.actor}" if out.actor != "firebreak" else "",
                         extra=log_context(incident_id=out.incident_id, correlation_key=out.correlation_key))
            await self.publish(self.incident_events, out.incident_id, out.model_dump_json().encode())

    async def publish(self, topic: faust.TopicT, key: str, value: bytes) -> None:
        """A stage's output, straight to the producer: Faust's `Topic.send` costs as much again in futures
        and callbacks (BENCHMARKS.md). Same partitioner, and Faust flushes the producer before each commit,
        so a committed input's output is on Kafka as before."""
        await self.app.producer.send(topic.get_topic_name(), key.encode(), value, None, None, None)

    # -- read model and changes ---------------------------------------------------------------------------

    async def handle_incident_event(self, event: Any) -> None:
        incident_event = IncidentEvent.model_validate_json(event.value)
        result, incident = await self.with_redis_retries(lambda: self.store.fold(incident_event))
        READ_MODEL_WRITES.labels(result.value).inc()
        if incident is None:
            return
        if result is ApplyResult.applied:
            self.observe_lifecycle(incident_event, incident)
        if self.executor is not None or self.pager is not None:
            # After the read model, so runs and pages see the incident. Both are idempotent per event.
            await self.with_redis_retries(lambda: self.react(incident_event, incident))

    @staticmethod
    def observe_lifecycle(event: IncidentEvent, incident: Incident) -> None:
        """Service levels, once per event (only when the read model took it): alert to incident, MTTA, MTTR."""
        if event.kind is IncidentEventKind.opened and event.alert is not None:
            ALERT_TO_INCIDENT.observe(max(0.0, (event.at - event.alert.starts_at).total_seconds()))
        elif event.kind in (IncidentEventKind.acknowledged, IncidentEventKind.resolved):
            histogram = TIME_TO_ACKNOWLEDGE if event.kind is IncidentEventKind.acknowledged else TIME_TO_RESOLVE
            histogram.observe(max(0.0, (event.at - incident.opened_at).total_seconds()))

    async def report_state(self) -> None:
        """Gauges read from the read model and the consumer: open incidents by severity, lag per partition."""
        try:
            open_now = await self.store.list(status="open", limit=100_000)
        except RedisError as exc:
            log.warning("open incidents gauge not updated (%s)", exc)
        else:
            counts: dict[str, int] = {s: 0 for s in self.rules.policies.severities}
            for incident in open_now:
                counts[incident.severity or "none"] = counts.get(incident.severity or "none", 0) + 1
            for severity, count in counts.items():
                OPEN_INCIDENTS.labels(severity).set(count)
        for tp in self.app.assignor.assigned_actives():
            handled = self.last_seen.get((tp.topic, tp.partition))
            try:
                end = self.app.consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - not known before the first fetch
                continue
            if handled is not None and end is not None:
                CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - handled - 1))

    @property
    def read_model_marker(self) -> str:
        return read_model_marker(self.settings)

    async def guard_read_model(self) -> None:
        """Rebuild the read model from `incident-events` and `action-results` when its marker is gone: Redis
        was flushed, lost its data, or is a new empty instance. One worker takes the job (SET NX); the marker
        expires if that worker dies before finishing, so another takes over. Two passes: events the stream
        could not apply during the first (their incident was not rebuilt yet) are applied by the second."""
        marker = self.read_model_marker
        try:
            if not await self.store.redis.set(marker, "rebuilding", nx=True, ex=REBUILD_LEASE_SECONDS):
                return
        except RedisError:
            return
        started = time.monotonic()
        try:
            log.warning("read model marker missing (Redis flushed or replaced): rebuilding from incident-events")
            first = await asyncio.to_thread(rebuild, self.settings, False, lambda n: None)
            second = await asyncio.to_thread(rebuild, self.settings, False, lambda n: None)
            resumed = await self.resume_escalations()
            await self.store.redis.set(marker, "ok")
        except Exception as exc:  # noqa: BLE001 - Kafka or Redis away: try again at the next check
            log.error("read model rebuild failed (%s); retrying at the next check", exc)
            with contextlib.suppress(RedisError):
                await self.store.redis.delete(marker)
            return
        READ_MODEL_REBUILDS.inc()
        log.info("read model rebuilt in %.1f s: first pass %s, second pass %s; %d escalations resumed",
                 time.monotonic() - started, dict(first), dict(second), resumed)

    async def resume_escalations(self) -> int:
        """After a rebuild: escalation timers lived only in Redis, so restart (if absent) those of open,
        unacknowledged incidents. Pages already sent are not sent again (their markers were restored). A failure
        here fails the rebuild, which the next check runs again (both are idempotent)."""
        if self.pager is None:
            return 0
        resumed = 0
        for incident in await self.store.list(status="open", limit=100_000):
            resumed += await self.pager.resume(incident)
        return resumed

    async def react(self, incident_event: IncidentEvent, incident: Incident) -> None:
        if self.pager is not None:
            await self.pager.on_incident_event(incident_event, incident)
        if self.executor is not None:
            await self.executor.trigger(incident_event, incident)

    async def with_redis_retries(self, write: Callable[[], Awaitable[T]]) -> T:
        """Retry a Redis write until Redis answers. The stage waits (its records stay on Kafka, lag grows)
        rather than skip an event: an event skipped here would leave a hole in the read model, and a run or
        a page it should have started would never happen."""
        attempt = 0
        while True:
            try:
                return await write()
            except REDIS_UNAVAILABLE as exc:  # anything else (WRONGTYPE, a script error) is a fault: dead-letter
                wait = redis_backoff(attempt)
                attempt += 1
                REDIS_WAITS.inc()
                log.warning("Redis unavailable (%s); the stage waits %.1f s and retries (attempt %d)", exc, wait, attempt)
                await asyncio.sleep(wait)

    async def handle_result(self, event: Any) -> None:
        result = ActionResult.model_validate_json(event.value)
        await self.with_redis_retries(lambda: self.action_log.record(result))

    async def escalated(self, event: IncidentEvent, incident: Any) -> None:
        """The pager paged level 2 or higher: runbooks `on: [escalated]` start."""
        if self.executor is not None:
            await self.executor.trigger(event, incident, Trigger.escalated)

    async def stop_background(self, app: faust.App, **kwargs: Any) -> None:
        grace = self.settings.executor_shutdown_grace_seconds
        await asyncio.gather(*(part.shutdown(grace) for part in (self.executor, self.pager) if part is not None))

    async def handle_delivery(self, event: Any) -> None:
        delivery = Delivery.model_validate_json(event.value)
        await self.with_redis_retries(lambda: self.notification_log.record(delivery))

    async def publish_delivery(self, delivery: Delivery) -> None:
        await self.notifications.send(key=delivery.incident_id.encode(), value=delivery.model_dump_json().encode())
        await self.publish_decisions([from_delivery(delivery)], delivery.incident_id)

    async def muted(self, incident: Incident) -> str | None:
        """Why pages for this incident are muted now (`muted_by`); `firebreak check` asks the same of its engine."""
        found: list[str | None] = []
        for alert in firing_alerts(incident):
            suppressed, _ = await self.suppression(alert.labels, alert.fingerprint, datetime.now(timezone.utc))
            found.append(suppressed)
            if suppressed is None:
                break  # one alert that pages is enough: no need to look up the rest
        return muted_by(found)

    async def publish_decisions(self, decisions: list[Decision], key: str) -> None:
        """One `decisions` record for what one input decided (nothing when it decided nothing)."""
        if decisions and self.settings.decisions_enabled:
            await self.publish(self.decisions, key, DecisionBatch(decisions=decisions).model_dump_json().encode())

    async def dead_letter_raw(self, key: bytes | None, value: bytes, reason: str, source: str) -> None:
        await self.dead_letter.send(key=key, value=value, headers={"stage": b"explain", "reason": reason.encode(),
                                                                   "source": source.encode()})

    async def dead_letter_delivery(self, delivery: Delivery) -> None:
        DEAD_LETTERS.labels("notify", "delivery_failed").inc()
        await self.dead_letter.send(key=delivery.incident_id.encode(), value=delivery.model_dump_json().encode(), headers={
            "stage": b"notify", "reason": b"delivery_failed", "error": (delivery.error or "")[-4000:].encode(),
            "source": f"notifications/{delivery.delivery_id}".encode()})

    async def publish_result(self, result: ActionResult) -> None:
        await self.action_results.send(key=result.incident_id.encode(), value=result.model_dump_json().encode())

    async def resolve_incident(self, incident_id: str, actor: str, comment: str) -> None:
        """A runbook's `resolve_incident`: the same command a person sends through the API."""
        incident = await self.store.get(incident_id)
        if incident is None or not incident.is_open:
            return
        command = IncidentCommand(action=CommandAction.resolve, incident_id=incident_id,
                                  correlation_key=incident.correlation_key, actor=actor, comment=comment,
                                  at=datetime.now(timezone.utc))
        await self.alert_events.send(key=command.correlation_key.encode(), value=command.model_dump_json().encode())

    async def handle_change(self, event: Any) -> None:
        await self.change_store.record(ChangeEvent.model_validate_json(event.value))


def read_model_marker(settings: Settings) -> str:
    """Present while Redis holds the read model; gone after a flush or on an empty replacement."""
    return f"{settings.redis_prefix}readmodel:marker"


def mark_new_read_model(settings: Settings) -> None:
    """Before the stages start: an empty Redis beside empty topics is a new deployment, not a lost read model,
    so it is marked as present instead of rebuilt a few seconds later. (Checked once the stages run, the
    topics would already hold this worker's first output, and a rebuild would compete with the stream.)"""
    import redis as sync_redis

    client = sync_redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    marker = read_model_marker(settings)
    try:
        if not client.exists(marker) and count_events(settings) == 0:
            client.set(marker, "ok", nx=True)
    except Exception as exc:  # noqa: BLE001 - the guard decides later
        log.info("could not check for a new deployment (%s); the read-model guard decides", exc)
    finally:
        client.close()


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app and its agents; nothing connects until the worker starts."""
    return Worker(settings).app


def run(settings: Settings) -> None:
    """Run one worker until SIGINT/SIGTERM."""
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=WORKER)
    try:
        # The table changelogs above all: see firebreak/topics.py for what goes wrong when Faust makes them.
        create_topics(settings)
    except Exception as exc:  # noqa: BLE001 - Kafka not up yet: Faust waits for it and creates what it needs
        log.warning("could not create the topics before starting (%s); Faust will create its changelogs", exc)
    mark_new_read_model(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, logging_config=dict_config(settings.log_level))
    worker.execute_from_commandline()
