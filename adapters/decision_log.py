"""The decision log's Redis copy, which `explain` reads: one sorted set per alert and one per incident.

`decisions:fp:<fingerprint>` and `decisions:inc:<incident>`: member = the decision's JSON, score = its time.
A decision that is written again (a redelivered record, a rebuild) is the same JSON, so it is stored once.
Each set keeps at most `decision_max_per_key` members, expires a retention after its last write, and reads
skip members older than the retention: the log is bounded per alert, per incident and in time, like the
topic it copies.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as aioredis

from correlation.explain import order, story
from schemas.decision import Decision, DecisionKind
from schemas.notification import Delivery, DeliveryKind, DeliveryStatus

# KEYS: the sets. ARGV: most members per set, seconds to expire, then per set its member count and that many
# (score, member) pairs. Adds them, trims each set to its newest, renews its expiry; returns members new.
_RECORD = """
local max, ttl, at, added = tonumber(ARGV[1]), tonumber(ARGV[2]), 3, 0
for _, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  at = at + 1
  for _ = 1, n do
    added = added + redis.call('ZADD', key, ARGV[at], ARGV[at + 1])
    at = at + 2
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -max - 1)
  redis.call('EXPIRE', key, ttl)
end
return added
"""


class DecisionLogSettings(Protocol):
    """What the log reads of the settings (firebreak.settings.Settings has these options)."""

    redis_prefix: str
    decision_retention_hours: float
    decision_max_per_key: int


class DecisionLog:
    def __init__(self, client: aioredis.Redis, prefix: str, retention_seconds: float, max_per_key: int) -> None:
        self._redis = client
        self._prefix = prefix
        self._retention = retention_seconds
        self._max = max_per_key
        self._record = client.register_script(_RECORD)

    @classmethod
    def from_settings(cls, client: aioredis.Redis, settings: DecisionLogSettings) -> DecisionLog:
        return cls(
            client, settings.redis_prefix, settings.decision_retention_hours * 3600, settings.decision_max_per_key
        )

    def _fp(self, fingerprint: str) -> str:
        return f"{self._prefix}decisions:fp:{fingerprint}"

    def _inc(self, incident_id: str) -> str:
        return f"{self._prefix}decisions:inc:{incident_id}"

    async def record(self, decisions: Iterable[Decision]) -> int:
        """Store decisions under their alert and incident; returns how many members were new. One round trip
        whatever their number (the sink writes in batches): a script adds, trims and renews each key."""
        oldest = time.time() - self._retention
        by_key: dict[str, dict[str, float]] = {}
        for decision in decisions:
            score = decision.at.timestamp()
            if score < oldest:
                continue  # older than `explain` answers for (a rebuild reading an old topic)
            member = decision.model_dump_json()
            for key in ([self._fp(decision.fingerprint)] if decision.fingerprint else []) + (
                [self._inc(decision.incident_id)] if decision.incident_id else []
            ):
                by_key.setdefault(key, {})[member] = score
        if not by_key:
            return 0
        # One script call for the whole batch: a pipeline's three replies per key cost more to parse here
        # than Redis takes to run them (py-spy, BENCHMARKS.md).
        args: list[object] = [self._max, int(self._retention) + 60]
        for members in by_key.values():
            args.append(len(members))
            for member, score in members.items():
                args += [score, member]
        return int(await self._record(keys=list(by_key), args=args))

    async def _read(self, key: str) -> list[Decision]:
        oldest = time.time() - self._retention
        raws = await self._redis.zrangebyscore(key, oldest, "+inf")
        return sorted((Decision.model_validate_json(r) for r in raws), key=order)

    async def for_fingerprint(self, fingerprint: str) -> list[Decision]:
        return await self._read(self._fp(fingerprint))

    async def for_incident(self, incident_id: str) -> list[Decision]:
        return await self._read(self._inc(incident_id))

    async def story(self, fingerprint: str) -> list[Decision]:
        """An alert's decisions, with those of the incidents it joined that concern no one alert."""
        own = await self.for_fingerprint(fingerprint)
        merged = list(own)
        for incident_id in sorted({d.incident_id for d in own if d.incident_id and d.kind is DecisionKind.joined}):
            merged += [d for d in await self.for_incident(incident_id) if d.fingerprint is None]
        return story(fingerprint, merged)


_DELIVERY_WORDS = {
    DeliveryKind.page: "page",
    DeliveryKind.update: "update",
    DeliveryKind.acknowledge: "acknowledge notice",
    DeliveryKind.resolve: "resolve notice",
    DeliveryKind.message: "runbook message",
}


def from_delivery(delivery: Delivery) -> Decision:
    """A page or notice that went out (or could not) as a decision on its incident."""
    what = _DELIVERY_WORDS[delivery.kind]
    level = f" level {delivery.level}" if delivery.level else ""
    to = f" to {delivery.user}" if delivery.user else ""
    if delivery.status is DeliveryStatus.delivered:
        result = "delivered" + (f" after {delivery.attempts} attempts" if delivery.attempts > 1 else "")
    elif delivery.status is DeliveryStatus.dead_lettered:
        result = f"failed after {delivery.attempts} attempts ({delivery.error or 'no error text'}); dead-lettered"
    else:
        result = "skipped: " + (delivery.error or "already delivered")
    return Decision(
        at=delivery.at,
        kind=DecisionKind.paged,
        incident_id=delivery.incident_id,
        rule="pager",
        reason=f"{what}{level}{to} via {delivery.channel} ({delivery.channel_type}): {result}",
        detail={
            "delivery": delivery.kind.value,
            "channel": delivery.channel,
            "channel_type": delivery.channel_type,
            "result": delivery.status.value,
            **({"level": str(delivery.level)} if delivery.level else {}),
        },
    )
