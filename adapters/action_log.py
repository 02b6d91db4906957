"""What happened around an incident besides its own events, for its timeline: runbook results (from
`action-results`) and notification deliveries (from `notifications`).

One Redis hash per incident and kind, `incident:<id>:actions` / `incident:<id>:notifications`: record id ->
JSON. Writing is set-if-absent per id, so a redelivered or replayed record appears once.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel

from schemas.notification import Delivery
from schemas.runbook import ActionResult

MAX_PER_INCIDENT = 2000

R = TypeVar("R", ActionResult, Delivery)


class IncidentLog(Generic[R]):
    def __init__(self, client: aioredis.Redis, prefix: str, kind: str, model: type[R]) -> None:
        self._redis = client
        self._prefix = prefix
        self._kind = kind
        self._model = model

    def _key(self, incident_id: str) -> str:
        return f"{self._prefix}incident:{incident_id}:{self._kind}"

    @staticmethod
    def _id(record: BaseModel) -> str:
        return str(getattr(record, "result_id", None) or record.delivery_id + "/" + record.status)

    async def record(self, record: R) -> bool:
        key = self._key(record.incident_id)
        if await self._redis.hlen(key) >= MAX_PER_INCIDENT:
            return False
        return bool(await self._redis.hsetnx(key, self._id(record), record.model_dump_json()))

    async def list(self, incident_id: str) -> list[R]:
        raws = await self._redis.hvals(self._key(incident_id))
        return sorted((self._model.model_validate_json(r) for r in raws), key=lambda r: r.at)

    async def clear(self, incident_ids: list[str]) -> None:
        if incident_ids:
            await self._redis.delete(*(self._key(i) for i in incident_ids))


def ActionLog(client: aioredis.Redis, prefix: str) -> IncidentLog[ActionResult]:
    return IncidentLog(client, prefix, "actions", ActionResult)


def NotificationLog(client: aioredis.Redis, prefix: str) -> IncidentLog[Delivery]:
    return IncidentLog(client, prefix, "notifications", Delivery)
