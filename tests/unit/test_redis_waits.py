"""A stage waits out Redis being unreachable (its records stay on Kafka) but does not wait forever on a
write Redis refuses: that one is dead-lettered like any other failing event."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from adapters.metrics import REDIS_WAITS
from stream.barrier import with_redis_retries


def test_unreachable_redis_is_waited_out():
    failures = [RedisConnectionError("refused"), RedisConnectionError("refused")]

    async def write() -> str:
        if failures:
            raise failures.pop()
        return "written"

    before = REDIS_WAITS._value.get()
    assert asyncio.run(with_redis_retries(write)) == "written"
    assert REDIS_WAITS._value.get() == before + 2


def test_a_refused_write_is_not_retried():
    calls = []

    async def write() -> None:
        calls.append(1)
        raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    with pytest.raises(ResponseError):
        asyncio.run(with_redis_retries(write))
    assert len(calls) == 1


class _FlakyRedis:
    """Redis that fails the given number of calls with a connection error, then answers."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RedisConnectionError("refused")
        self.markers: set[str] = set()

    def _maybe_fail(self) -> None:
        if self.failures:
            self.failures -= 1
            raise self.error

    async def set(self, key: str, value: str, ex: int) -> None:
        self._maybe_fail()
        self.markers.add(key)

    async def exists(self, key: str) -> int:
        self._maybe_fail()
        return int(key in self.markers)


def _deliverer(client: _FlakyRedis):
    from actions.delivery import Deliverer

    return Deliverer(None, client, "fb:", None, None)  # type: ignore[arg-type] - only the markers are used here


def test_a_message_sent_while_redis_is_away_is_not_sent_again_and_is_marked_once_it_is_back():
    """It already went out: the escalation's retry must see it as delivered, in this process at once and in
    Redis once Redis answers again."""

    async def scenario() -> tuple[bool, set[str]]:
        client = _FlakyRedis(failures=3)
        deliverer = _deliverer(client)
        await deliverer._mark("inc-1/g/r0/l1/pager/-")  # returns at once: delivery does not wait for Redis
        seen = await deliverer._delivered("inc-1/g/r0/l1/pager/-")
        await asyncio.wait_for(deliverer._marking, 10)
        return seen, client.markers

    seen, markers = asyncio.run(scenario())
    assert seen and markers == {"fb:delivered:inc-1/g/r0/l1/pager/-"}


def test_a_marker_redis_refuses_is_not_retried():
    async def scenario() -> tuple[bool, object]:
        client = _FlakyRedis(failures=1, error=ResponseError("OOM command not allowed"))
        deliverer = _deliverer(client)
        await deliverer._mark("k")
        return await deliverer._delivered("k"), deliverer._marking

    delivered, marking = asyncio.run(scenario())
    assert not delivered and marking is None
