"""Which Redis errors mean "Redis is away for now" (wait and try again) rather than "Redis refused this"."""

from __future__ import annotations

from redis.exceptions import BusyLoadingError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

REDIS_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError)
REDIS_MAX_WAIT = 5.0  # seconds between attempts at most


def redis_backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 1`: 0.25 s doubling, at most REDIS_MAX_WAIT."""
    return min(REDIS_MAX_WAIT, 0.25 * 2 ** min(attempt, 5))
