"""The dedup stage: one state entry per fingerprint decides whether an alert is news.

Rules (each with an id, counted in metrics and usable in logs):

| id      | entry before          | alert              | result                                   |
|---------|-----------------------|--------------------|------------------------------------------|
| DUP-1   | none / resolved       | firing, newer      | emit firing                              |
| DUP-2   | firing                | firing             | duplicate: count, update last seen       |
| DUP-3   | firing                | resolved           | emit resolved                            |
| DUP-4   | none / resolved       | resolved           | duplicate resolve: count, emit nothing   |
| DUP-5   | resolved at T         | firing, startsAt<T | stale (a late copy of an old firing)     |
| DUP-0   | position >= record's  | any                | redelivery: re-emit what that record did |

Redelivery (the same Kafka record seen again after a crash) is detected by position: the entry keeps the
position of the last record applied and the events it emitted, so a redelivered record re-emits exactly
those events (downstream stages are idempotent) and never changes state twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from correlation.fingerprint import correlation_key, group_labels
from correlation.policy import PolicySet
from schemas import Alert, AlertEvent, AlertStatus


class DedupOutcome(StrEnum):
    fired = "fired"
    duplicate = "duplicate"
    resolved = "resolved"
    duplicate_resolve = "duplicate_resolve"
    stale = "stale"
    redelivered = "redelivered"


class FingerprintState(BaseModel):
    """What the dedup stage remembers about one fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint: str
    status: AlertStatus
    starts_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    last_seen: AwareDatetime
    duplicates: int = 0
    position: int
    last_emitted: list[AlertEvent] = []


def dedup(
    entry: FingerprintState | None,
    alert: Alert,
    position: int,
    now: datetime,
    policies: PolicySet,
) -> tuple[FingerprintState, list[AlertEvent], DedupOutcome]:
    """Apply one alert record at `position` (its offset in the fingerprint's partition) at time `now`.

    An emitted event carries the first policy that matches the alert and the correlation key it yields.
    """
    if entry is not None and position <= entry.position:
        replay = entry.last_emitted if position == entry.position else []
        return entry, replay, DedupOutcome.redelivered

    def keep(**changes: object) -> FingerprintState:
        assert entry is not None
        return entry.model_copy(update={"last_seen": now, "position": position, "last_emitted": [], **changes})

    def emit(status: AlertStatus, outcome: DedupOutcome) -> tuple[FingerprintState, list[AlertEvent], DedupOutcome]:
        policy = policies.select(alert.labels)
        grouped = group_labels(alert.labels, policy.group_by)
        event = AlertEvent(
            status=status,
            policy=policy.name,
            correlation_key=f"{policy.name}:{correlation_key(grouped)}",
            group_labels=grouped,
            alert=alert,
            at=now,
        )
        state = FingerprintState(
            fingerprint=alert.fingerprint,
            status=status,
            starts_at=alert.starts_at,
            resolved_at=(alert.ends_at or now) if status is AlertStatus.resolved else None,
            last_seen=now,
            position=position,
            last_emitted=[event],
        )
        return state, [event], outcome

    if alert.status is AlertStatus.firing:
        if entry is None:
            return emit(AlertStatus.firing, DedupOutcome.fired)
        if entry.status is AlertStatus.firing:
            return keep(duplicates=entry.duplicates + 1), [], DedupOutcome.duplicate
        assert entry.resolved_at is not None
        if alert.starts_at < entry.resolved_at:
            return keep(duplicates=entry.duplicates + 1), [], DedupOutcome.stale
        return emit(AlertStatus.firing, DedupOutcome.fired)

    if entry is None or entry.status is AlertStatus.resolved:
        if entry is None:
            # Nothing to resolve; remember it so a late firing copy from before the resolve reads as stale.
            state = FingerprintState(
                fingerprint=alert.fingerprint,
                status=AlertStatus.resolved,
                starts_at=alert.starts_at,
                resolved_at=alert.ends_at or now,
                last_seen=now,
                position=position,
            )
            return state, [], DedupOutcome.duplicate_resolve
        return keep(duplicates=entry.duplicates + 1), [], DedupOutcome.duplicate_resolve
    return emit(AlertStatus.resolved, DedupOutcome.resolved)
