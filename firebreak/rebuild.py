"""Rebuilding the Redis read model from `incident-events`, the log it is a view of."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import redis.asyncio as aioredis
from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from firebreak.readmodel import IncidentStore
from firebreak.settings import Settings
from schemas import IncidentEvent

BATCH = 500


def count_events(settings: Settings) -> int:
    """Records on incident-events now (what a rebuild will read)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        partitions = [TopicPartition("incident-events", p) for p in consumer.partitions_for_topic("incident-events") or set()]
        ends = consumer.end_offsets(partitions)
        begins = consumer.beginning_offsets(partitions)
        return sum(ends[tp] - begins[tp] for tp in partitions)
    finally:
        consumer.close()


def rebuild(settings: Settings, clear: bool, progress: Callable[[int], None]) -> Counter[str]:
    """Apply every incident event from the beginning; safe while workers run (each event applies once)."""
    return asyncio.run(_rebuild(settings, clear, progress))


async def _rebuild(settings: Settings, clear: bool, progress: Callable[[int], None]) -> Counter[str]:
    client = aioredis.Redis.from_url(settings.redis_url)
    store = IncidentStore(client, settings.redis_prefix)
    results: Counter[str] = Counter()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        if clear:
            await store.clear()
        partitions = [TopicPartition("incident-events", p) for p in consumer.partitions_for_topic("incident-events") or set()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000, max_records=BATCH).values():
                for record in records:
                    try:
                        event = IncidentEvent.model_validate_json(record.value)
                    except ValidationError:
                        results["undecodable"] += 1
                        continue
                    results[(await store.apply(event)).value] += 1
                progress(len(records))
    finally:
        consumer.close()
        await client.aclose()
    return results
