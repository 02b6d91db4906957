"""The dedup stage: one state entry per fingerprint decides whether an alert is news.

| id    | entry before          | alert                              | result                                     |
|-------|-----------------------|------------------------------------|--------------------------------------------|
| DUP-1 | none / resolved       | firing, newer                      | emit firing                                |
| DUP-2 | firing                | firing                             | duplicate: count, update last seen         |
| DUP-3 | firing                | resolved                           | emit resolved                              |
| DUP-4 | none / resolved       | resolved                           | duplicate resolve: count, emit nothing     |
| DUP-5 | resolved at T         | firing, startsAt < T, received     | stale (a late copy of an old firing)       |
|       |                       | within LATE_COPY_WINDOW of the     |                                            |
|       |                       | resolve                            |                                            |
| DUP-11| resolved at T         | firing, startsAt < T, received     | emit firing: its source still sends it     |
|       |                       | later than that                    | firing, whoever resolved it                |
| DUP-12| firing, expiry E      | firing with a later expiry, E less | emit a refresh carrying the new expiry:    |
|       | known (expires_at)    | than 3/4 of its new life away      | GRP-29 resolves it if it passes            |
| DUP-6 | firing, suppressed    | firing, no longer suppressed       | emit firing: it may now join an incident   |
| DUP-7 | firing, quiet longer  | firing                             | emit firing: quiet_resolve resolved it     |
|       | than quiet_resolve    |                                    | downstream, so it fires anew               |
| DUP-8 | firing, quiet_resolve | firing, a third of quiet_resolve   | emit a refresh: grouping renews when it    |
|       |                       | since the last event               | last saw the alert; nothing else           |
| DUP-9 | firing                | firing, other annotations,         | emit a refresh marked `updated`: the       |
|       |                       | generatorURL or truncatedAlerts    | incident shows the latest copy; no page    |
| DUP-10| firing, released      | firing                             | emit firing: a person resolved its         |
|       | (GRP-25)              |                                    | incident while it fired; this copy is news |
| DUP-0 | position <= entry's   | any                                | redelivery: re-emit what that record did   |

A firing alert that a silence or inhibition covers (the caller says which, as `suppressed_by`) is still
emitted, carrying the reason, so it is recorded; the grouping stage keeps it out of incidents.

Flapping: every change of state is remembered for the flapping window; more than the allowed number of
changes in it marks the alert flapping until it has been stable for the hold-down period, and its events
carry that time so its incident holds notifications.

Time: a resolve is remembered as of its `endsAt`, but never later than the moment the record was received
(`receivedAt`): a sender's clock cannot make later firings look stale (DUP-5). Nor can a resolve from another
sender: a copy from before the resolve is a late copy only while copies can still be in flight
(`LATE_COPY_WINDOW` after the resolve was received); after that its source is still sending it firing, and it
fires again (DUP-11), as Alertmanager takes a firing re-send after a resolve (prefer a duplicate to silence).

Redelivery (the same Kafka record seen again after a crash) is detected by position: the entry keeps the
position of the last record applied and its recent emissions (correlation/redelivery.py), so a redelivered
record re-emits exactly what it emitted (downstream stages are idempotent) and never changes state twice.
"""

from __future__ import annotations

import statistics
import zlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from correlation.fingerprint import correlation_key, group_labels
from correlation.policy import HISTORY, Policy
from correlation.redelivery import remember, replayed
from correlation.rules import Rules
from schemas import Alert, AlertEvent, AlertStatus


class DedupOutcome(StrEnum):
    fired = "fired"
    duplicate = "duplicate"
    resolved = "resolved"
    duplicate_resolve = "duplicate_resolve"
    stale = "stale"
    suppressed = "suppressed"
    released = "released"
    redelivered = "redelivered"


def _sent_event() -> type[BaseModel]:
    """An alert event as the redelivery memory keeps it: every field but the alert, which the redelivered record
    carries again (the same Kafka record, the same bytes). Built from AlertEvent's own fields, so it cannot drift;
    an entry written by an older release, whose memory held whole events, reads too (the alert is ignored)."""
    # Values typed Any: mypy checks a `**dict` against every keyword of create_model (`__config__`, `__doc__`, ...),
    # not only the field definitions it fills.
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in AlertEvent.model_fields.items() if name != "alert"
    }
    return create_model("SentEvent", __config__=ConfigDict(extra="ignore", frozen=True), **fields)


if TYPE_CHECKING:
    SentEvent: TypeAlias = BaseModel  # a model built at run time: mypy cannot see its fields
else:
    SentEvent = _sent_event()


def sent(event: AlertEvent) -> SentEvent:
    """The memory of an emitted event (`SentEvent`)."""
    return SentEvent.model_construct(**{k: v for k, v in event.__dict__.items() if k != "alert"})


def resent(memo: SentEvent, alert: Alert) -> AlertEvent:
    """The emitted event again, from its memory and the redelivered record's alert."""
    return AlertEvent.model_construct(**memo.__dict__, alert=alert)


class FingerprintState(BaseModel):
    """What the dedup stage remembers about one fingerprint.

    Stored state outlives releases: fields an older release wrote and this one dropped are ignored, and
    fields it adds have defaults.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    fingerprint: str
    status: AlertStatus
    starts_at: AwareDatetime
    resolved_at: AwareDatetime | None = None
    last_seen: AwareDatetime
    duplicates: int = 0
    position: int
    suppressed_by: str | None = None
    transitions: list[AwareDatetime] = []
    flapping_until: AwareDatetime | None = None
    emitted: list[tuple[int, AwareDatetime, list[SentEvent]]] = []  # recent output, alerts left out
    refreshed_at: AwareDatetime | None = None  # the last event (or refresh) sent for it
    lifetimes: list[float] = Field(
        [], exclude_if=lambda v: not v
    )  # seconds from firing to its source's resolve, of its last firings (transient pause)
    content: str = Field("", exclude_if=lambda v: not v)  # digest of what a repeat may change (DUP-9): `content_of`
    released_at: AwareDatetime | None = Field(
        None, exclude_if=lambda v: v is None
    )  # GRP-25: its incident resolved by a person
    resolve_seen: AwareDatetime | None = Field(
        None, exclude_if=lambda v: v is None
    )  # when its last resolve was received
    expires_at: AwareDatetime | None = Field(None, exclude_if=lambda v: v is None)  # the endsAt (expiry) grouping knows


LATE_COPY_WINDOW = timedelta(seconds=60)  # how long after a resolve a firing copy from before it is "in flight" (DUP-5)


def content_of(alert: Alert) -> str:
    """A digest of what a repeat of a firing alert may change without being news for paging: annotations,
    generatorURL and the webhook's truncatedAlerts (DUP-9). The repr of a tuple quotes each string, so no two
    contents share a text; CRC-32 keeps it cheap on the duplicate path (a collision only misses one update)."""
    text = repr((sorted(alert.annotations.items()), alert.generator_url, alert.truncated_alerts))
    return format(zlib.crc32(text.encode()), "08x")


def expiry_news(known: datetime | None, ends_at: datetime | None, now: datetime) -> bool:
    """Whether a firing copy's expiry (`Alert.expires_at`: the endsAt of an alert sent without status, as Alertmanager
    API v2 senders such as Prometheus send it, a few minutes ahead) must reach the grouping stage (DUP-12): it gives
    one where none was known, drops it, or the known one is less than 3/4 of the new one's remaining life away.
    Prometheus re-sends every minute with endsAt 4 minutes ahead: one refresh in two copies. The last copy's
    expiry is then at most a third of its life after the one grouping knows (`grouping.expiry_deadline`)."""
    if ends_at is None or ends_at <= now:
        return known is not None and ends_at is None
    return known is None or (ends_at > known and known - now < (ends_at - now) * 3 / 4)


def resolved_time(alert: Alert, now: datetime) -> datetime:
    """When a resolve took effect: its endsAt, else `now`, but never after the record was received."""
    return min(alert.ends_at or now, alert.received_at)


def release(entry: FingerprintState | None, position: int, at: datetime) -> FingerprintState | None:
    """GRP-25 told the dedup stage that a person resolved the incident of this still-firing alert at `at`:
    its next firing copy is news (DUP-10). A record at a position already applied changes nothing."""
    if entry is None or position <= entry.position:
        return entry
    if entry.status is not AlertStatus.firing:
        return entry.model_copy(update={"position": position})
    return entry.model_copy(update={"released_at": at, "position": position})


def counted_only(
    before: FingerprintState | None, after: FingerprintState, outputs: list[AlertEvent], rules: Rules
) -> bool:
    """Whether `after` differs from `before` only in what counts copies (`duplicates`, `last_seen`, `position`,
    expired emissions) and no rule reads those: a pure re-send (DUP-2 with the same content, DUP-5). The
    stream keeps such a change in memory for a while instead of writing it to the changelog at once; a crash
    may lose it (RELIABILITY.md). `last_seen` is read by DUP-7 only when a policy has quiet_resolve, so then no
    change counts as counted-only."""
    return (
        before is not None
        and not outputs
        and not rules.policies.quiet_resolving
        and after.status is before.status
        and after.content == before.content
        and after.resolve_seen == before.resolve_seen
        and after.refreshed_at == before.refreshed_at
        and after.expires_at == before.expires_at
        and after.released_at == before.released_at
    )


def route(alert: Alert, rules: Rules) -> tuple[str, str, dict[str, str]]:
    """(policy name, correlation key, group labels) for an alert: the first policy that matches decides."""
    policy = rules.policies.select(alert.labels)
    grouped = group_labels(alert.labels, policy.group_by)
    return policy.name, f"{policy.name}:{correlation_key(grouped)}", grouped


def transient_hold(
    lifetimes: list[float], alert: Alert, policy: Policy, severity_label: str
) -> tuple[float | None, str]:
    """(seconds to hold the page, the figures) if this alert's history says it usually resolves by itself."""
    pause = policy.transient_pause
    if (
        pause is None
        or alert.labels.get(severity_label) in pause.except_severities
        or len(lifetimes) < pause.min_history
    ):
        return None, ""
    within = pause.within.total_seconds()
    quick = sum(1 for seconds in lifetimes if seconds <= within)
    if quick / len(lifetimes) < pause.share:
        return None, ""
    typical = timedelta(seconds=round(statistics.median(lifetimes)))
    return within, (
        f"resolved by itself within {pause.within} in {quick} of its last {len(lifetimes)} firings "
        f"(median {typical}; policy {policy.name} needs {pause.share:.0%} of at least {pause.min_history})"
    )


def dedup(
    entry: FingerprintState | None,
    alert: Alert,
    position: int,
    now: datetime,
    rules: Rules,
    suppressed_by: str | None = None,
    suppression_detail: dict[str, str] | None = None,
) -> tuple[FingerprintState, list[AlertEvent], DedupOutcome]:
    """Apply one alert record at `position` (its offset in the fingerprint's partition) at time `now`.
    `suppression_detail` (who silenced it and why, or the inhibiting alert) travels with a suppressed event
    for the decision log."""
    if entry is not None and position <= entry.position:
        return entry, [resent(memo, alert) for memo in replayed(entry.emitted, position)], DedupOutcome.redelivered

    def keep(**changes: object) -> FingerprintState:
        assert entry is not None
        return entry.model_copy(
            update={
                "last_seen": now,
                "position": position,
                "emitted": remember(entry.emitted, position, now, []),
                **changes,
            }
        )

    def emit(
        status: AlertStatus, outcome: DedupOutcome, suppressed: str | None, rule: str
    ) -> tuple[FingerprintState, list[AlertEvent], DedupOutcome]:
        flapping = rules.policies.flapping
        changed = entry is None or entry.status is not status
        transitions = [t for t in (entry.transitions if entry else []) if t > now - flapping.window]
        if changed:
            transitions.append(now)
        flapping_until = entry.flapping_until if entry else None
        if len(transitions) > flapping.transitions:
            flapping_until = now + flapping.hold_down
        policy, key, grouped = route(alert, rules)
        lifetimes = entry.lifetimes if entry else []
        if status is AlertStatus.resolved and entry is not None:
            lifetimes = [*lifetimes, max(0.0, (resolved_time(alert, now) - entry.starts_at).total_seconds())][-HISTORY:]
        hold, why = (
            transient_hold(lifetimes, alert, rules.policies.get(policy), rules.policies.severity_label)
            if status is AlertStatus.firing
            else (None, "")
        )
        event = AlertEvent(
            status=status,
            policy=policy,
            correlation_key=key,
            group_labels=grouped,
            alert=alert,
            at=now,
            page_hold_seconds=hold,
            page_hold_reason=why,
            source_position=position,
            flapping_until=flapping_until if flapping_until and flapping_until > now else None,
            suppressed_by=suppressed,
            suppressed_detail=dict(suppression_detail or {}) if suppressed else {},
            rule=rule,
        )
        state = FingerprintState(
            fingerprint=alert.fingerprint,
            status=status,
            starts_at=min(alert.starts_at, alert.received_at),  # a startsAt ahead of receipt cannot shorten lifetimes
            resolved_at=resolved_time(alert, now) if status is AlertStatus.resolved else None,
            resolve_seen=now if status is AlertStatus.resolved else None,
            last_seen=now,
            position=position,
            suppressed_by=suppressed if status is AlertStatus.firing else None,
            transitions=transitions,
            flapping_until=flapping_until,
            emitted=remember(entry.emitted if entry else [], position, now, [sent(event)]),
            refreshed_at=now,
            lifetimes=lifetimes,
            content=content_of(alert) if status is AlertStatus.firing else "",
            expires_at=alert.expires_at if status is AlertStatus.firing else None,
        )
        return state, [event], outcome

    def refresh(rule: str, content: str) -> tuple[FingerprintState, list[AlertEvent], DedupOutcome]:
        assert entry is not None
        policy, key, grouped = route(alert, rules)
        event = AlertEvent(
            status=AlertStatus.firing,
            policy=policy,
            correlation_key=key,
            group_labels=grouped,
            alert=alert,
            at=now,
            source_position=position,
            suppressed_by=entry.suppressed_by,
            refresh=True,
            updated=content != entry.content,
            rule=rule,
        )
        state = entry.model_copy(
            update={
                "last_seen": now,
                "position": position,
                "duplicates": entry.duplicates + 1,
                "refreshed_at": now,
                "content": content,
                "expires_at": alert.expires_at,
                "emitted": remember(entry.emitted, position, now, [sent(event)]),
            }
        )
        return state, [event], DedupOutcome.duplicate

    if alert.status is AlertStatus.firing:
        if entry is None:
            return emit(
                AlertStatus.firing,
                DedupOutcome.suppressed if suppressed_by else DedupOutcome.fired,
                suppressed_by,
                "DUP-1",
            )
        if entry.status is AlertStatus.firing:
            if entry.suppressed_by and not suppressed_by:
                return emit(AlertStatus.firing, DedupOutcome.released, None, "DUP-6")
            if entry.released_at is not None:
                return emit(
                    AlertStatus.firing,
                    DedupOutcome.suppressed if suppressed_by else DedupOutcome.fired,
                    suppressed_by,
                    "DUP-10",
                )
            quiet = rules.policies.select(alert.labels).quiet_resolve if rules.policies.quiet_resolving else None
            if quiet is not None and now - entry.last_seen > quiet:
                return emit(
                    AlertStatus.firing,
                    DedupOutcome.suppressed if suppressed_by else DedupOutcome.fired,
                    suppressed_by,
                    "DUP-7",
                )
            content = content_of(alert)
            if content != entry.content and entry.content:
                return refresh("DUP-9", content)
            if quiet is not None and now - (entry.refreshed_at or entry.starts_at) >= quiet / 3:
                return refresh("DUP-8", content)
            if expiry_news(entry.expires_at, alert.expires_at, now):
                return refresh("DUP-12", content)
            return keep(duplicates=entry.duplicates + 1, content=content), [], DedupOutcome.duplicate
        assert entry.resolved_at is not None
        if alert.starts_at < entry.resolved_at:
            if now - (entry.resolve_seen or entry.resolved_at) <= LATE_COPY_WINDOW:
                return keep(duplicates=entry.duplicates + 1), [], DedupOutcome.stale
            return emit(
                AlertStatus.firing,
                DedupOutcome.suppressed if suppressed_by else DedupOutcome.fired,
                suppressed_by,
                "DUP-11",
            )
        return emit(
            AlertStatus.firing, DedupOutcome.suppressed if suppressed_by else DedupOutcome.fired, suppressed_by, "DUP-1"
        )

    if entry is None:
        # Nothing to resolve; remember it so a late firing copy from before the resolve reads as stale.
        state = FingerprintState(
            fingerprint=alert.fingerprint,
            status=AlertStatus.resolved,
            starts_at=alert.starts_at,
            resolved_at=resolved_time(alert, now),
            resolve_seen=now,
            last_seen=now,
            position=position,
        )
        return state, [], DedupOutcome.duplicate_resolve
    if entry.status is AlertStatus.resolved:
        return keep(duplicates=entry.duplicates + 1, resolve_seen=now), [], DedupOutcome.duplicate_resolve
    return emit(AlertStatus.resolved, DedupOutcome.resolved, None, "DUP-3")
