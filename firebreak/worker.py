"""The Faust worker: builds the app, its topics and tables, and wires the stages of `stream/` into agents.

Agents (each at concurrency 1, so offsets are never committed past an event still in work):
- `dedup`   on `alerts` (key fingerprint), table `fingerprints`  -> `alert-events` (key correlation key)
- `group`   on `alert-events`,              table `groups`        -> `incident-events` (key incident id)
- `project` on `incident-events`                                  -> Redis read model
- `changes` on `changes`                                          -> Redis, for change suspects
- `results` on `action-results`                                   -> Redis, the incident timeline's actions
- `deliveries` on `notifications`                                 -> Redis, the incident timeline's pages

Records are packed: one record holds the items of one partition (schemas/batch.py), and each stage folds a
record's items through its pure core, saving each changed key once (stream/). Every agent runs inside the
error barrier (stream/barrier.py): bad records and items to `dead-letter`, skipped records repaired.

The dedup and grouping stages also write what they decided about each alert to `decisions`
(correlation/decisions.py), as does paging (routes chosen, pages sent, pages held or not sent). A plain
batch consumer beside the stages folds that topic into Redis for `explain` (stream/decision_sink.py).

With runbooks configured, `project` also creates a run for each runbook an incident event triggers, and a
background task (actions/executor.py) drives the runs. With escalation policies configured, `project`
starts, stops or updates the incident's escalation in Redis and a background task (actions/pager.py)
pages. Actions and pages never run inside a stream agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import faust
from prometheus_client import start_http_server
from redis.exceptions import RedisError

from actions.steps.base import StepFailed
from adapters.action_log import ActionLog, NotificationLog
from adapters.change_store import ChangeStore
from adapters.decision_log import DecisionLog, from_delivery
from adapters.entries import Entries
from adapters.gaps import GapFetcher
from adapters.inhibition_store import InhibitionStore
from adapters.logs import dict_config
from adapters.metrics import CONSUMER_LAG, DEAD_LETTERS, OPEN_INCIDENTS, READ_MODEL_REBUILDS, UNWRITTEN_COUNTS, WORKER
from adapters.readmodel import IncidentStore
from adapters.redis_client import connect
from adapters.redis_errors import REDIS_UNAVAILABLE
from adapters.silence_store import SilenceStore
from correlation.dedup import FingerprintState
from correlation.escalation import firing_alerts, muted_by
from correlation.grouping import GroupState
from firebreak.kafka_auth import aiokafka_kwargs, faust_credentials
from firebreak.rebuild import count_events, rebuild
from firebreak.runtime import Outbound, build_executor, build_pager
from firebreak.settings import Settings
from firebreak.topics import create_topics
from schemas import CommandAction, Incident, IncidentCommand, IncidentEvent
from schemas.decision import Decision, DecisionBatch
from schemas.errors import Reason
from schemas.notification import Delivery
from schemas.runbook import ActionResult, Trigger
from stream.barrier import Barrier
from stream.decision_sink import DecisionSink
from stream.dedup import DedupStage
from stream.grouping import GroupStage, tick_record
from stream.outbox import PartitionCounts
from stream.project import ProjectStage
from stream.sinks import Sinks
from stream.suppression import Suppression

log = logging.getLogger("firebreak.worker")

REBUILD_LEASE_SECONDS = 600  # a rebuild not finished by then (its worker died) is started again by another
PAGING_TOPICS = ("incident-events", "action-results", "notifications")  # what a rebuild restores before escalations


def _raw_schema() -> faust.Schema:
    """Topic records stay bytes in Faust; pydantic parses them at our edge (bad ones go to dead-letter).

    A fresh instance per topic: Faust mutates a schema it is given.
    """
    return faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


class Worker:
    """The composition of one worker: the Faust app, the stages (stream/), the pager and executor, and the
    timers around them. Nothing is built until `create_app` makes one."""

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
        topic = {
            name: app.topic(name, schema=_raw_schema())
            for name in (
                "alerts",
                "alert-events",
                "incident-events",
                "changes",
                "action-results",
                "notifications",
                "decisions",
                "dead-letter",
            )
        }
        self.alert_events = topic["alert-events"]
        self.notifications = topic["notifications"]
        self.action_results = topic["action-results"]
        self.dead_letter = topic["dead-letter"]
        # Table entries: str keys, the stage state models' JSON as bytes (adapters/entries.py).
        self.fingerprints = Entries(
            app.Table("fingerprints", default=None, key_type=str, value_type=bytes), FingerprintState, "fingerprints"
        )
        self.groups = Entries(app.Table("groups", default=None, key_type=str, value_type=bytes), GroupState, "groups")
        redis_client = connect(settings.redis_url, "firebreak-worker")
        self.store = IncidentStore(redis_client, settings.redis_prefix)
        self.suppression = Suppression(
            SilenceStore(redis_client, settings.redis_prefix),
            InhibitionStore(redis_client, settings.redis_prefix),
            self.rules.policies.inhibit_rules,
        )
        self.decision_log = DecisionLog.from_settings(redis_client, settings)
        outbound = Outbound.from_settings(settings)
        self.executor = build_executor(
            settings,
            outbound,
            redis_client,
            self.store,
            self.rules.topology,
            self.publish_result,
            self.resolve_incident,
        )
        self.pager = build_pager(
            settings,
            outbound,
            redis_client,
            self.store,
            self.rules.topology,
            self.publish_delivery,
            self.dead_letter_delivery,
            self.escalated,
            self.publish_decisions,
            self.muted,
        )
        self.barrier = Barrier(
            app, self.dead_letter, GapFetcher(settings.kafka_bootstrap, aiokafka_kwargs(settings)), settings.app_id
        )
        counts = PartitionCounts(app)
        decisions = settings.decisions_enabled
        self.dedup = DedupStage(self.fingerprints, self.rules, self.suppression, self.barrier, counts, app, decisions)
        self.group = GroupStage(
            self.groups,
            self.rules,
            ChangeStore(redis_client, settings.redis_prefix),
            self.barrier,
            counts,
            app,
            decisions,
        )
        react = self.react if self.executor is not None or self.pager is not None else None
        project = ProjectStage(self.store, react, self.barrier)
        sinks = Sinks(
            ChangeStore(redis_client, settings.redis_prefix),
            ActionLog(redis_client, settings.redis_prefix),
            NotificationLog(redis_client, settings.redis_prefix),
        )

        for name, source, batch in (
            ("dedup", "alerts", self.dedup.handle),
            ("group", "alert-events", self.group.handle),
            ("project", "incident-events", project.handle),
        ):
            app.agent(topic[source], name=name, concurrency=1)(self.barrier.guarded_batches(name, source, batch))
        for name, source, one in (
            ("changes", "changes", sinks.change),
            ("results", "action-results", sinks.result),
            ("deliveries", "notifications", sinks.delivery),
        ):
            app.agent(topic[source], name=name, concurrency=1)(self.barrier.guarded(name, source, one))
        if decisions:
            self.decision_sink = DecisionSink(
                settings, self.decision_log, self.dead_letter_raw, aiokafka_kwargs(settings)
            )
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

    async def forget_revoked(self, app: faust.App, revoked: set[faust.types.TP], **kwargs: Any) -> None:
        await self.barrier.forget_revoked(revoked)
        self.fingerprints.forget({tp.partition for tp in revoked if tp.topic == "alerts"})

    async def baseline_assigned(self, app: faust.App, assigned: set[faust.types.TP], **kwargs: Any) -> None:
        await self.barrier.baseline_assigned(assigned)

    async def refresh_silences(self) -> None:
        await self.suppression.refresh(datetime.now(UTC))

    async def tick(self) -> None:
        """Send a tick to each of this worker's alert-events partitions that has an entry due now."""
        now = datetime.now(UTC)
        mine = {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == "alert-events"}
        for partition in sorted(self.group.due_partitions(now) & mine):
            await self.alert_events.send(value=tick_record(now), partition=partition)

    async def report_state(self) -> None:
        """Gauges read from the read model and the consumer: open incidents by severity, lag per partition."""
        UNWRITTEN_COUNTS.set(self.fingerprints.unwritten())
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
            handled = self.barrier.last_seen.get((tp.topic, tp.partition))
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
        mine = f"rebuilding by {uuid.uuid4().hex}"  # a SET sent again after a lost answer finds its own value
        try:
            taken = await self.store.redis.set(marker, mine, nx=True, ex=REBUILD_LEASE_SECONDS)
            if taken is None and await self.store.redis.get(marker) != mine.encode():
                return
        except RedisError:
            return
        started = time.monotonic()
        try:
            log.warning("read model marker missing (Redis flushed or replaced): rebuilding from incident-events")
            # What paging needs first: incidents, runs and deliveries, the incidents again, then the escalations;
            # the decision log (`explain`'s history, the longest topic) after them.
            first = await asyncio.to_thread(rebuild, self.settings, False, lambda n: None, PAGING_TOPICS)
            second = await asyncio.to_thread(rebuild, self.settings, False, lambda n: None, ("incident-events",))
            resumed = await self.resume_escalations()
            if self.settings.decisions_enabled:
                first += await asyncio.to_thread(rebuild, self.settings, False, lambda n: None, ("decisions",))
            await self.store.redis.set(marker, "ok")
        except Exception as exc:  # noqa: BLE001 - Kafka or Redis away: try again at the next check
            log.error("read model rebuild failed (%s); retrying at the next check", exc)
            with contextlib.suppress(RedisError):
                await self.store.redis.delete(marker)
            return
        READ_MODEL_REBUILDS.inc()
        log.info(
            "read model rebuilt in %.1f s: first pass %s, second pass %s; %d escalations resumed",
            time.monotonic() - started,
            dict(first),
            dict(second),
            resumed,
        )

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

    async def escalated(self, event: IncidentEvent, incident: Any) -> None:
        """The pager paged level 2 or higher: runbooks `on: [escalated]` start."""
        if self.executor is not None:
            await self.executor.trigger(event, incident, Trigger.escalated)

    async def stop_background(self, app: faust.App, **kwargs: Any) -> None:
        grace = self.settings.executor_shutdown_grace_seconds
        await asyncio.gather(*(part.shutdown(grace) for part in (self.executor, self.pager) if part is not None))

    async def publish_delivery(self, delivery: Delivery) -> None:
        await self.notifications.send(key=delivery.incident_id.encode(), value=delivery.model_dump_json().encode())
        await self.publish_decisions([from_delivery(delivery)], delivery.incident_id)

    async def muted(self, incident: Incident) -> str | None:
        """Why pages for this incident are muted now (`muted_by`); `firebreak check` asks the same of its engine."""
        found: list[str | None] = []
        for alert in firing_alerts(incident):
            suppressed, _ = await self.suppression.one(alert.labels, alert.fingerprint, datetime.now(UTC))
            found.append(suppressed)
            if suppressed is None:
                break  # one alert that pages is enough: no need to look up the rest
        return muted_by(found)

    async def publish_decisions(self, decisions: list[Decision], key: str) -> None:
        """One `decisions` record for what one input decided (nothing when it decided nothing)."""
        if decisions and self.settings.decisions_enabled:
            await self.app.producer.send(
                "decisions",
                key.encode(),
                DecisionBatch(decisions=decisions).model_dump_json().encode(),
                None,
                None,
                None,
            )

    async def dead_letter_raw(self, key: bytes | None, value: bytes, reason: str, source: str) -> None:
        await self.dead_letter.send(
            key=key, value=value, headers={"stage": b"explain", "reason": reason.encode(), "source": source.encode()}
        )

    async def dead_letter_delivery(self, delivery: Delivery) -> None:
        reason = delivery.reason or "delivery_failed"  # a Reason (schemas/errors.py); older records carry none
        DEAD_LETTERS.labels("notify", reason).inc()
        await self.dead_letter.send(
            key=delivery.incident_id.encode(),
            value=delivery.model_dump_json().encode(),
            headers={
                "stage": b"notify",
                "reason": reason.encode(),
                "error": (delivery.error or "")[-4000:].encode(),
                "source": f"notifications/{delivery.delivery_id}".encode(),
            },
        )

    async def publish_result(self, result: ActionResult) -> None:
        await self.action_results.send(key=result.incident_id.encode(), value=result.model_dump_json().encode())

    async def resolve_incident(self, incident_id: str, actor: str, comment: str) -> None:
        """A runbook's `resolve_incident`: the same command a person sends through the API. Raises StepFailed
        (`unavailable`, retryable) when Redis cannot say whether the incident is open: nothing was sent."""
        try:
            incident = await self.store.get(incident_id)
        except REDIS_UNAVAILABLE as exc:
            raise StepFailed(
                f"Redis unavailable, the incident was not resolved ({exc})", reason=Reason.unavailable
            ) from exc
        if incident is None or not incident.is_open:
            return
        command = IncidentCommand(
            action=CommandAction.resolve,
            incident_id=incident_id,
            correlation_key=incident.correlation_key,
            actor=actor,
            comment=comment,
            at=datetime.now(UTC),
        )
        await self.alert_events.send(key=command.correlation_key.encode(), value=command.model_dump_json().encode())


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
    worker = faust.Worker(
        app, loglevel=settings.log_level.upper(), quiet=True, logging_config=dict_config(settings.log_level)
    )
    worker.execute_from_commandline()
