"""Rebuilding the Redis read model from the logs it is a view of: `incident-events` (incidents),
`action-results` (the runbook entries of their timelines), `notifications` (their deliveries) and
`decisions` (what `explain` reads, inside its retention)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from actions.delivery import MARK_SECONDS
from adapters.action_log import ActionLog, IncidentLog, NotificationLog
from adapters.decision_log import DecisionLog
from adapters.readmodel import IncidentStore
from adapters.redis_client import connect
from adapters.run_store import RunStore
from firebreak.kafka_auth import kafka_python_kwargs
from firebreak.settings import Settings
from schemas import IncidentEvent
from schemas.batch import incident_events
from schemas.decision import Decision, DecisionBatch
from schemas.notification import Delivery, DeliveryStatus
from schemas.runbook import ActionResult

BATCH = 500
FOLD_AT_ONCE = 2000  # incident events (or decisions) folded into Redis together


TOPICS = ("incident-events", "action-results", "notifications", "decisions")


def count_events(settings: Settings) -> int:
    """Records on the topics now (what a rebuild will read)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **kafka_python_kwargs(settings))
    try:
        partitions = [TopicPartition(t, p) for t in TOPICS for p in consumer.partitions_for_topic(t) or set()]
        ends = consumer.end_offsets(partitions)
        begins = consumer.beginning_offsets(partitions)
        return sum(ends[tp] - begins[tp] for tp in partitions)
    finally:
        consumer.close()


def rebuild(
    settings: Settings, clear: bool, progress: Callable[[int], None], topics: tuple[str, ...] = TOPICS
) -> Counter[str]:
    """Apply every incident event from the beginning; safe while workers run (each event applies once).
    `topics`: which logs to fold, in this order (all by default; incidents first)."""
    return asyncio.run(_rebuild(settings, clear, progress, topics))


async def _rebuild(
    settings: Settings, clear: bool, progress: Callable[[int], None], topics: tuple[str, ...]
) -> Counter[str]:
    client = connect(settings.redis_url, "firebreak-rebuild")
    store = IncidentStore(client, settings.redis_prefix)
    logs: dict[str, tuple[IncidentLog, type[ActionResult] | type[Delivery], str]] = {
        "action-results": (ActionLog(client, settings.redis_prefix), ActionResult, "action"),
        "notifications": (NotificationLog(client, settings.redis_prefix), Delivery, "delivery"),
    }
    runs = RunStore(client, settings.redis_prefix)
    decisions = DecisionLog.from_settings(client, settings)
    results: Counter[str] = Counter()

    async def remember(record: ActionResult | Delivery) -> None:
        """Restore what keeps a redelivered incident event from acting twice: runs that existed, and
        notifications already delivered or given up on (their dedup markers)."""
        if isinstance(record, ActionResult):
            await runs.remember(record.run_id)
        elif record.status in (DeliveryStatus.delivered, DeliveryStatus.dead_lettered):
            await client.set(f"{settings.redis_prefix}delivered:{record.delivery_id}", "1", ex=MARK_SECONDS)

    try:
        if clear:
            ids = [i.decode() for i in await client.zrange(f"{settings.redis_prefix}incidents", 0, -1)]
            for log, _, _ in logs.values():
                await log.clear(ids)
            await store.clear()
        # Incidents first: the action and delivery entries hang off incidents that must exist to be shown.
        # Incident events and decisions are folded FOLD_AT_ONCE at a time (records in topic order, so each
        # incident's events stay in order): a Redis round trip per record made a rebuild take a minute.
        events: list[IncidentEvent] = []
        decided: list[Decision] = []

        async def fold_events() -> None:
            for result, _ in await store.fold_many(events):
                results[result.value] += 1
            events.clear()

        async def record_decisions() -> None:
            results["decisions_recorded"] += await decisions.record(decided)
            decided.clear()

        for topic in topics:
            for value in _records(settings, topic, progress):
                if topic == "incident-events":
                    try:
                        events += incident_events(value)  # packed, or a single event of the previous version
                    except ValidationError:
                        results["undecodable"] += 1
                    if len(events) >= FOLD_AT_ONCE:
                        await fold_events()
                    continue
                if topic == "decisions":
                    try:
                        decided += DecisionBatch.model_validate_json(value).decisions
                    except ValidationError:
                        results["undecodable"] += 1
                    if len(decided) >= FOLD_AT_ONCE:
                        await record_decisions()
                    continue
                log, model, name = logs[topic]
                try:
                    record = model.model_validate_json(value)
                except ValidationError:
                    results["undecodable"] += 1
                    continue
                results[f"{name}_recorded" if await log.record(record) else f"{name}_already_recorded"] += 1
                await remember(record)
            if events:
                await fold_events()
            if decided:
                await record_decisions()
    finally:
        await client.aclose()
    return results


def _records(settings: Settings, topic: str, progress: Callable[[int], None]) -> Iterator[bytes]:
    """Every record value on `topic` from the beginning to the end it has now."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        **kafka_python_kwargs(settings),
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
        if not partitions:
            return
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000, max_records=BATCH).values():
                for record in records:
                    yield record.value
                progress(len(records))
    finally:
        consumer.close()
