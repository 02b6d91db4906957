"""Creating Firebreak's topics with kafka-python's admin client; safe to run again.

The workers' table changelogs (`<app_id>-fingerprints-changelog`, `<app_id>-groups-changelog`) are created
here too, compacted, before any worker starts: when two workers of a new deployment start together and Faust
creates them on the fly, one worker's metadata can show a changelog with 0 partitions for minutes, and Faust
refuses every table write of that worker meanwhile (PartitionsMismatch).
"""

from __future__ import annotations

import time
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


CHANGELOG_TABLES = ("fingerprints", "groups")


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.app_id}-{table}-changelog" for table in CHANGELOG_TABLES]


def create_topics(settings: Settings, wait_seconds: float = 30) -> list[TopicReport]:
    """Create the missing topics and wait until every partition has a leader; report the partition count of
    existing ones and flag a mismatch."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="firebreak-admin",
        request_timeout_ms=10000,
        **kafka_python_kwargs(settings),
    )
    names = [*TOPICS, *changelog_topics(settings)]
    compacted = set(changelog_topics(settings))
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs=_configs(name, settings, compacted),
            )
            for name in names
            if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=10000)
            except TopicAlreadyExistsError:
                pass  # another process created them between the list and the create: the goal is met
        deadline = time.monotonic() + wait_seconds
        described = admin.describe_topics(names)
        while time.monotonic() < deadline and not all(_ready(meta) for meta in described):
            time.sleep(0.2)
            described = admin.describe_topics(names)
        reports = []
        for meta in described:
            count = len(meta["partitions"])
            problem = None
            if count != settings.topic_partitions:
                problem = (
                    f"has {count} partitions, settings say {settings.topic_partitions}; "
                    "set FIREBREAK_TOPIC_PARTITIONS to match or recreate the topic"
                )
            reports.append(TopicReport(meta["name"], meta["name"] not in existing, count, problem))
        return reports
    finally:
        admin.close()


def _configs(name: str, settings: Settings, compacted: set[str]) -> dict[str, str]:
    if name in compacted:
        return {"cleanup.policy": "compact"}
    if name == "decisions":  # bounded: `explain` answers for this long, and the log never grows without end
        return {"retention.ms": str(int(settings.decision_retention_hours * 3600 * 1000))}
    return {}


def _ready(meta: dict) -> bool:
    """Every partition of a described topic has a leader (a new topic's metadata lists none at first)."""
    partitions = meta.get("partitions") or []
    return bool(partitions) and all(
        p.get("leader_id", p.get("leader", -1)) >= 0 and not p.get("error_code") for p in partitions
    )
