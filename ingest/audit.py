"""The audit log: every operator and admin action (ack, resolve, silence, approval, the runbook kill switch,
signed links) with who did it (the token's name, and the actor the request named), when, and the outcome.

`status` is the HTTP status of the request, or 0 for a decision Firebreak took itself (a high-risk step's
approval requested, granted, refused or expired). Each entry is a JSON log line (`logger: firebreak.audit`) and an item of the Redis list `audit` (newest first,
the last `MAX_ENTRIES`), served at `GET /api/v1/audit` to admins and by `firebreak audit`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("firebreak.audit")
MAX_ENTRIES = 10_000


class AuditLog:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._key = f"{prefix}audit"

    async def record(self, *, principal: str, action: str, target: dict[str, str], actor: str | None, status: int,
                     detail: str = "") -> dict[str, Any]:
        entry = {"at": datetime.now(timezone.utc).isoformat(), "principal": principal, "actor": actor, "action": action,
                 "target": target, "status": status, "detail": detail[:500]}
        log.info("audit %s by %s (%s): %s -> %s", action, principal, actor or "-", target, status,
                 extra={"incident_id": target.get("incident_id"), "run_id": target.get("run_id")})
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(self._key, json.dumps(entry, sort_keys=True))
                pipe.ltrim(self._key, 0, MAX_ENTRIES - 1)
                await pipe.execute()
        except RedisError as exc:  # the log line above still holds it
            log.warning("audit entry not stored in Redis (%s); it is in this log", exc)
        return entry

    async def list(self, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in await self._redis.lrange(self._key, 0, limit - 1)]
