"""Recent changes in Redis, one sorted set per service (score: the change's time), for suspect lookups."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from schemas import ChangeEvent

RETENTION = timedelta(days=7)


class ChangeStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, service: str) -> str:
        return f"{self._prefix}changes:{service}"

    async def record(self, change: ChangeEvent) -> None:
        key = self._key(change.service)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {change.model_dump_json(): change.at.timestamp()})
            pipe.zremrangebyscore(key, "-inf", (change.at - RETENTION).timestamp())
            await pipe.execute()

    async def between(self, services: Iterable[str], since: datetime, until: datetime) -> list[ChangeEvent]:
        names = sorted(set(services))
        if not names:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zrangebyscore(self._key(name), since.timestamp(), until.timestamp())
            results = await pipe.execute()
        return [ChangeEvent.model_validate_json(raw) for rows in results for raw in rows]
