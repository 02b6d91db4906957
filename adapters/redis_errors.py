"""Which Redis errors mean "Redis is away for now" (wait and try again) rather than "Redis refused this"."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError)
REDIS_MAX_WAIT = 5.0  # seconds between attempts at most


def redis_backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1`: 0.25 s doubling, at most REDIS_MAX_WAIT."""
    return min(REDIS_MAX_WAIT, 0.25 * 2 ** min(attempt, 5))


T = TypeVar("T")


async def until_redis_answers(write: Callable[[], Awaitable[T]], waiting: Callable[[Exception, float, int], None]) -> T:
    """`write()`'s result once Redis answers: while it fails with REDIS_UNAVAILABLE, `waiting(error, seconds,
    attempt)` is told (attempt 1, 2, ...) and the call is made again after `redis_backoff` seconds. Any other
    error propagates. `write` must be safe to send again: the first attempt may have run."""
    attempt = 0
    while True:
        try:
            return await write()
        except REDIS_UNAVAILABLE as exc:
            wait = redis_backoff(attempt)
            attempt += 1
            waiting(exc, wait, attempt)
            await asyncio.sleep(wait)
