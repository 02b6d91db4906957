"""Action results on the incident timeline: a Redis hash per incident, folded from `action-results`.

Key `incident:<id>:actions`: result id -> ActionResult JSON. Writing is set-if-absent per result id, so a
redelivered or replayed result appears once.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from schemas.runbook import ActionResult

MAX_PER_INCIDENT = 2000


class ActionLog:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, incident_id: str) -> str:
        return f"{self._prefix}incident:{incident_id}:actions"

    async def record(self, result: ActionResult) -> bool:
        key = self._key(result.incident_id)
        if await self._redis.hlen(key) >= MAX_PER_INCIDENT:
            return False
        return bool(await self._redis.hsetnx(key, result.result_id, result.model_dump_json()))

    async def list(self, incident_id: str) -> list[ActionResult]:
        raws = await self._redis.hvals(self._key(incident_id))
        return sorted((ActionResult.model_validate_json(r) for r in raws), key=lambda r: r.at)

    async def clear(self, incident_ids: list[str]) -> None:
        if incident_ids:
            await self._redis.delete(*(self._key(i) for i in incident_ids))
