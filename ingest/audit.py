"""The audit log: every operator and admin action (ack, resolve, merge, split, silence, approval, the runbook
kill switch, signed links), refused ones included, with who did it (the token's name, and the actor the request
named), when, and the outcome.

`status` is the HTTP status of the request, or 0 for a decision Firebreak took itself (a high-risk step's
approval requested, granted, refused or expired). Each entry is a JSON log line (`logger: firebreak.audit`)
and an item of a Redis list, newest first, served at `GET /api/v1/audit` to admins and by `firebreak audit`.

Two lists, so that nobody without a credential can push out the entries of people with one:
- `audit`: requests that authenticated (a valid token, or a signed link whose signature held), the last
  `MAX_ENTRIES`;
- `audit:unauthenticated`: refused requests without a valid credential (a bad token on an audited route, a
  forged or expired link), the last `MAX_UNAUTHENTICATED`. At most `UNAUTHENTICATED_PER_MINUTE` of them are
  written (and logged) per minute; the rest of that minute are only counted, in one entry for the minute.

Every string a client chose (principal, actor, target, detail) is stored with control characters escaped
(`\\n` -> `\\x0a`) and capped at `MAX_TEXT_CHARS` (detail: `MAX_DETAIL_CHARS`), so one entry stays one line.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from ingest.params import printable

log = logging.getLogger("firebreak.audit")
MAX_ENTRIES = 10_000
MAX_UNAUTHENTICATED = 1_000
UNAUTHENTICATED_PER_MINUTE = 20
MAX_TEXT_CHARS = 200
MAX_DETAIL_CHARS = 500
UNAUTHENTICATED = "unauthenticated"  # the principal of every entry in the second list
# What a handler adds to its request's entry beyond the route and its path values (a merge's target, the
# alerts a split moves); the entry of a refused request has the refusal instead.
AUDIT_DETAIL = web.RequestKey("audit_detail", str)
_COUNTER_TTL_SECONDS = 8 * 24 * 3600  # a minute's count outlives the entry naming it for a week at least


class AuditLog:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._key = f"{prefix}audit"
        self._refused_key = f"{prefix}audit:{UNAUTHENTICATED}"

    async def record(
        self, *, principal: str, action: str, target: dict[str, str], actor: str | None, status: int, detail: str = ""
    ) -> dict[str, Any]:
        """Write one entry of an authenticated principal (or of Firebreak itself, status 0) and return it."""
        entry = _entry(principal, action, target, actor, status, detail)
        _log_entry(entry)
        await self._push(self._key, MAX_ENTRIES, entry)
        return entry

    async def record_unauthenticated(
        self,
        *,
        action: str,
        target: dict[str, str],
        actor: str | None,
        status: int,
        detail: str = "",
        now: float | None = None,
    ) -> dict[str, Any] | None:
        """Write one refusal of a request without a valid credential, unless this minute already has
        `UNAUTHENTICATED_PER_MINUTE`: then it is only counted (the entry `refusals beyond the limit` of the
        minute reports the count). Returns the entry written, or None when it was only counted."""
        minute = int((time.time() if now is None else now) // 60)
        counter = f"{self._refused_key}:minute:{minute}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, _COUNTER_TTL_SECONDS)
                seen = int((await pipe.execute())[0])
        except RedisError as exc:
            log.warning("unauthenticated refusal not counted in Redis (%s)", exc)
            return None
        if seen > UNAUTHENTICATED_PER_MINUTE + 1:
            return None
        if seen == UNAUTHENTICATED_PER_MINUTE + 1:
            entry = _entry(
                UNAUTHENTICATED,
                "refusals beyond the limit",
                {"minute": str(minute)},
                None,
                0,
                f"more than {UNAUTHENTICATED_PER_MINUTE} unauthenticated refusals this minute; "
                "the rest are counted in `refused`, not listed",
            )
            entry["at"] = datetime.fromtimestamp(minute * 60, UTC).isoformat()
        else:
            entry = _entry(UNAUTHENTICATED, action, target, actor, status, detail)
        _log_entry(entry)
        await self._push(self._refused_key, MAX_UNAUTHENTICATED, entry)
        return entry

    async def list(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` entries of authenticated requests and of Firebreak itself."""
        return [json.loads(raw) for raw in await self._redis.lrange(self._key, 0, limit - 1)]

    async def list_unauthenticated(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` refusals without a credential; a minute's `refusals beyond the limit` entry gets
        `refused`: how many refusals that minute saw in all (None once its counter expired)."""
        entries = [json.loads(raw) for raw in await self._redis.lrange(self._refused_key, 0, limit - 1)]
        minutes = [e["target"]["minute"] for e in entries if e["action"] == "refusals beyond the limit"]
        if minutes:
            counts = await self._redis.mget([f"{self._refused_key}:minute:{m}" for m in minutes])
            seen = dict(zip(minutes, counts))
            for entry in entries:
                if entry["action"] == "refusals beyond the limit":
                    count = seen.get(entry["target"]["minute"])
                    entry["refused"] = None if count is None else int(count)
        return entries

    async def _push(self, key: str, keep: int, entry: dict[str, Any]) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(key, json.dumps(entry, sort_keys=True))
                pipe.ltrim(key, 0, keep - 1)
                await pipe.execute()
        except RedisError as exc:  # the log line still holds it
            log.warning("audit entry not stored in Redis (%s); it is in this log", exc)


def _entry(
    principal: str, action: str, target: dict[str, str], actor: str | None, status: int, detail: str
) -> dict[str, Any]:
    return {
        "at": datetime.now(UTC).isoformat(),
        "principal": printable(principal, MAX_TEXT_CHARS),
        "actor": None if actor is None else printable(actor, MAX_TEXT_CHARS),
        "action": action,
        "target": {printable(k, MAX_TEXT_CHARS): printable(v, MAX_TEXT_CHARS) for k, v in target.items()},
        "status": status,
        "detail": printable(detail, MAX_DETAIL_CHARS),
    }


def _log_entry(entry: dict[str, Any]) -> None:
    target = entry["target"]
    log.info(
        "audit %s by %s (%s): %s -> %s",
        entry["action"],
        entry["principal"],
        entry["actor"] or "-",
        target,
        entry["status"],
        extra={"incident_id": target.get("incident_id"), "run_id": target.get("run_id")},
    )
