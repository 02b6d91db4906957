"""Silences in Redis (one hash, id -> JSON), read by every worker and the API."""

from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from schemas import Silence


class SilenceStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._key = f"{prefix}silences"

    async def put(self, silence: Silence) -> None:
        await self._redis.hset(self._key, silence.id, silence.model_dump_json(by_alias=True))

    async def get(self, silence_id: str) -> Silence | None:
        raw = await self._redis.hget(self._key, silence_id)
        return Silence.model_validate_json(raw) if raw else None

    async def all(self) -> list[Silence]:
        raws = await self._redis.hvals(self._key)
        return sorted((Silence.model_validate_json(r) for r in raws), key=lambda s: s.starts_at)

    async def current(self, now: datetime) -> list[Silence]:
        """Silences not yet ended (active now or starting later)."""
        return [s for s in await self.all() if s.ends_at > now]
