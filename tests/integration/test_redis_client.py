"""The Redis client every Firebreak process opens (adapters/redis_client.py), against the stack's real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.redis_client import connect
from tests.conftest import Stack

pytestmark = pytest.mark.integration


def _kill_clients_named(url: str, name: str) -> int:
    """What a Redis restart does to a pool: every connection named `name` is closed by Redis. How many were."""
    admin = redis.Redis.from_url(url)
    try:
        ids = [c["id"] for c in admin.client_list() if c.get("name") == name]
        for client_id in ids:
            admin.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        admin.close()


def test_commands_after_redis_dropped_every_pooled_connection_succeed(stack: Stack) -> None:
    """After Redis closed all of a client's pooled connections (a restart, a proxy dropping idle ones), the next
    commands on each of them succeed on new connections. A client without the retry fails each one once with
    "Connection closed by server": that failure, landing between a runbook step's claim and its call, once made
    a step that never ran look unknown."""

    async def pooled(client: aioredis.Redis, n: int) -> list[object]:
        # n commands at once: n pooled connections, each used again after the kill
        return await asyncio.gather(*(client.ping() for _ in range(n)), return_exceptions=True)

    async def main() -> None:
        ours = connect(stack.redis_url, "test-ours")
        bare = aioredis.Redis.from_url(stack.redis_url, client_name="test-bare")
        try:
            for client in (ours, bare):
                assert all(r is True for r in await pooled(client, 4))
            assert _kill_clients_named(stack.redis_url, "test-ours") == 4
            assert _kill_clients_named(stack.redis_url, "test-bare") == 4
            after_bare = await pooled(bare, 4)
            after_ours = await pooled(ours, 4)
            assert any(isinstance(r, RedisConnectionError) for r in after_bare), after_bare  # the fault is real
            assert after_ours == [True] * 4, after_ours
        finally:
            await ours.aclose()
            await bare.aclose()

    asyncio.run(main())
