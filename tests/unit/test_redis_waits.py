"""A stage waits out Redis being unreachable (its records stay on Kafka) but does not wait forever on a
write Redis refuses: that one is dead-lettered like any other failing event."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from firebreak.metrics import REDIS_WAITS
from firebreak.worker import Worker


def test_unreachable_redis_is_waited_out():
    failures = [RedisConnectionError("refused"), RedisConnectionError("refused")]

    async def write() -> str:
        if failures:
            raise failures.pop()
        return "written"

    before = REDIS_WAITS._value.get()
    assert asyncio.run(Worker.with_redis_retries(None, write)) == "written"  # type: ignore[arg-type]
    assert REDIS_WAITS._value.get() == before + 2


def test_a_refused_write_is_not_retried():
    calls = []

    async def write() -> None:
        calls.append(1)
        raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    with pytest.raises(ResponseError):
        asyncio.run(Worker.with_redis_retries(None, write))  # type: ignore[arg-type]
    assert len(calls) == 1
