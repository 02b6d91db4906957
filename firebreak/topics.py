"""Creating Firebreak's topics with kafka-python's admin client; safe to run again."""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from firebreak.kafka_auth import kafka_python_kwargs
from firebreak.settings import TOPICS, Settings


@dataclass(frozen=True)
class TopicReport:
    name: str
    created: bool
    partitions: int
    problem: str | None = None


def create_topics(settings: Settings) -> list[TopicReport]:
    """Create the missing topics; report the partition count of existing ones and flag a mismatch."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="firebreak-admin", request_timeout_ms=10000,
                             **kafka_python_kwargs(settings))
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=settings.topic_partitions, replication_factor=settings.topic_replication_factor)
            for name in TOPICS
            if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=10000)
            except TopicAlreadyExistsError:
                pass  # another process created them between the list and the create: the goal is met
        reports = []
        for meta in admin.describe_topics(list(TOPICS)):
            count = len(meta["partitions"])
            problem = None
            if count != settings.topic_partitions:
                problem = (f"has {count} partitions, settings say {settings.topic_partitions}; "
                           "set FIREBREAK_TOPIC_PARTITIONS to match or recreate the topic")
            reports.append(TopicReport(meta["name"], meta["name"] not in existing, count, problem))
        return reports
    finally:
        admin.close()
