"""Remediation guardrails: how often a runbook may act, checked when a run would start.

One Lua script decides atomically across workers, in this order: the circuit breaker (open after K failed
runs in a row; after its cooldown one trial run goes, and its outcome closes or re-opens it), the runbook's
rate, the per-target rate, and the blast radius (distinct targets within a window; a target already acted on
within the window is not new). Windows slide: each admitted run is a sorted-set member scored by its time.
The decision is recorded per run, so a run looked at again (a retry, another worker after a crash) gets the
same answer instead of taking a second token.

Keys (prefix from settings): `guard:<runbook>:runs`, `guard:<runbook>:target:<target>`,
`guard:<runbook>:targets`, `guard:<runbook>:breaker` (hash), `guard:<runbook>:decision:<run id>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from schemas.runbook import Guardrails

DECISION_SECONDS = 7 * 86400

# KEYS: runs, target, targets, breaker, decision
# ARGV: now, run id, target, rate max, rate per, target max, target per, radius max, radius per,
#       breaker failures, breaker cooldown, decision ttl   (0 = that guardrail is off; times in seconds)
_ADMIT = """
local decided = redis.call('GET', KEYS[5])
if decided then return decided end
local now = tonumber(ARGV[1])
local function decide(answer)
  redis.call('SET', KEYS[5], answer, 'EX', ARGV[12])
  return answer
end
local k = tonumber(ARGV[10])
if k > 0 then
  local failures = tonumber(redis.call('HGET', KEYS[4], 'failures') or '0')
  local open_until = tonumber(redis.call('HGET', KEYS[4], 'open_until') or '0')
  if failures >= k then
    if open_until > now then
      return decide('circuit_breaker|' .. failures .. '|' .. open_until)
    end
    redis.call('HSET', KEYS[4], 'open_until', now + tonumber(ARGV[11]))  -- half-open: this run is the trial
  end
end
local function over(key, max, per)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - per)
  return redis.call('ZCARD', key) >= max
end
local rate_max, rate_per = tonumber(ARGV[4]), tonumber(ARGV[5])
if rate_max > 0 and over(KEYS[1], rate_max, rate_per) then
  return decide('rate|')
end
local target_max, target_per = tonumber(ARGV[6]), tonumber(ARGV[7])
if target_max > 0 and over(KEYS[2], target_max, target_per) then
  return decide('per_target|')
end
local radius_max, radius_per = tonumber(ARGV[8]), tonumber(ARGV[9])
if radius_max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - radius_per)
  if not redis.call('ZSCORE', KEYS[3], ARGV[3]) and redis.call('ZCARD', KEYS[3]) >= radius_max then
    return decide('blast_radius|')
  end
end
if rate_max > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[2]); redis.call('EXPIRE', KEYS[1], math.ceil(rate_per) + 60)
end
if target_max > 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[2]); redis.call('EXPIRE', KEYS[2], math.ceil(target_per) + 60)
end
if radius_max > 0 then
  redis.call('ZADD', KEYS[3], now, ARGV[3]); redis.call('EXPIRE', KEYS[3], math.ceil(radius_per) + 60)
end
return decide('ok|')
"""

# KEYS: breaker, outcome marker   ARGV: succeeded (1/0), failures to open, cooldown, now, marker ttl
_OUTCOME = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[5]) == false then return 0 end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'failures', 0, 'open_until', 0)
  return 1
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'open_until', tonumber(ARGV[4]) + tonumber(ARGV[3]))
end
return 1
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    guardrail: str = ""  # which one blocked: circuit_breaker, rate, per_target, blast_radius
    reason: str = ""


class Guard:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.redis = client
        self.p = prefix
        self._admit = client.register_script(_ADMIT)
        self._outcome = client.register_script(_OUTCOME)

    def _k(self, runbook: str, *parts: str) -> str:
        return f"{self.p}guard:{runbook}:" + ":".join(parts)

    async def admit(self, runbook: str, rails: Guardrails, run_id: str, target: str, now: datetime) -> Decision:
        """Whether this run may start; the same answer every time it is asked for the same run."""

        def seconds(limit: object, attr: str = "per") -> float:
            return getattr(limit, attr).total_seconds() if limit is not None else 0

        breaker = rails.circuit_breaker
        raw = await self._admit(
            keys=[
                self._k(runbook, "runs"),
                self._k(runbook, "target", target),
                self._k(runbook, "targets"),
                self._k(runbook, "breaker"),
                self._k(runbook, "decision", run_id),
            ],
            args=[
                now.timestamp(),
                run_id,
                target,
                rails.rate.max if rails.rate else 0,
                seconds(rails.rate),
                rails.per_target.max if rails.per_target else 0,
                seconds(rails.per_target),
                rails.blast_radius.max_targets if rails.blast_radius else 0,
                seconds(rails.blast_radius),
                breaker.failures if breaker else 0,
                seconds(breaker, "cooldown"),
                DECISION_SECONDS,
            ],
        )
        guardrail, _, detail = (raw.decode() if isinstance(raw, bytes) else raw).partition("|")
        if guardrail == "ok":
            return Decision(True)
        return Decision(False, guardrail, _reason(guardrail, detail, rails, target))

    async def outcome(self, runbook: str, rails: Guardrails, run_id: str, succeeded: bool, now: datetime) -> None:
        """Feed the circuit breaker one finished run (once per run, however often it is reported)."""
        breaker = rails.circuit_breaker
        if breaker is None:
            return
        await self._outcome(
            keys=[self._k(runbook, "breaker"), self._k(runbook, "outcome", run_id)],
            args=[
                1 if succeeded else 0,
                breaker.failures,
                breaker.cooldown.total_seconds(),
                now.timestamp(),
                DECISION_SECONDS,
            ],
        )


def _reason(guardrail: str, detail: str, rails: Guardrails, target: str) -> str:
    """What a person paged about a blocked run reads."""
    if guardrail == "rate" and rails.rate:
        return f"{rails.rate.max} runs within {_span(rails.rate.per)} already"
    if guardrail == "per_target" and rails.per_target:
        return f"{rails.per_target.max} runs against {target} within {_span(rails.per_target.per)} already"
    if guardrail == "blast_radius" and rails.blast_radius:
        return (
            f"{rails.blast_radius.max_targets} distinct targets within {_span(rails.blast_radius.per)} already; "
            f"{target} would be one more"
        )
    if guardrail == "circuit_breaker":
        failures, _, until = detail.partition("|")
        when = datetime.fromtimestamp(float(until), tz=UTC) if until else None
        return f"open after {failures} failed runs in a row" + (f", until {when:%Y-%m-%d %H:%M:%S} UTC" if when else "")
    return detail or guardrail


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
