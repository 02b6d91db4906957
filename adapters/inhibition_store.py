"""Firing inhibition sources in Redis: one set of fingerprints per rule key, shared by every worker."""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis


class InhibitionStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, rule_key: str) -> str:
        return f"{self._prefix}inhibit:{rule_key}"

    async def sources(self, rule_keys: Iterable[str]) -> dict[str, set[str]]:
        keys = list(rule_keys)
        if not keys:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.smembers(self._key(key))
            results = await pipe.execute()
        return {
            key: {m.decode() if isinstance(m, bytes) else m for m in members} for key, members in zip(keys, results)
        }

    async def update_many(self, changes: dict[tuple[str, str], bool]) -> None:
        """((rule key, fingerprint) -> firing) applied in one pipelined round trip: add a firing source,
        remove one that stopped."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for (key, fingerprint), firing in changes.items():
                (pipe.sadd if firing else pipe.srem)(self._key(key), fingerprint)
            await pipe.execute()
