"""Delivering one notification against an in-process receiver: backoff with jitter, Retry-After on 429, no retry
on other 4xx, dead-letter after the last attempt, and failing open when Redis is unreachable."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError

from actions.channels import Channels, Message
from actions.delivery import Deliverer
from actions.outbound import AllowList, OutboundHttp
from adapters.secrets import Secrets
from schemas.notification import Delivery, DeliveryKind, DeliveryStatus, WebhookChannel
from tests.http_target import Target


async def deliver(
    target: Target, path: str, attempts: int = 4
) -> tuple[Delivery | None, list[float], list[Delivery], list[Delivery]]:
    http = OutboundHttp(AllowList.parse([f"127.0.0.1:{target.port}"]))
    channels = Channels({"hook": WebhookChannel(url=target.base + path)}, http, Secrets(None, {}), None)
    unreachable = RedisDown()
    sleeps: list[float] = []
    published: list[Delivery] = []
    dead: list[Delivery] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def publish(d: Delivery) -> None:
        published.append(d)

    async def dead_letter(d: Delivery) -> None:
        dead.append(d)

    deliverer = Deliverer(
        channels, unreachable, "t:", publish, dead_letter, attempts=attempts, backoff=1.0, max_backoff=30, sleep=sleep
    )
    message = Message(
        kind="page",
        dedup_key="inc-1/g/r0/l1/hook/-",
        incident={
            "id": "inc-1",
            "title": "t",
            "status": "triggered",
            "severity": "critical",
            "services": [],
            "probable_root": None,
            "suspect_changes": [],
            "firing_count": 1,
            "alert_count": 1,
            "labels": {},
        },
        level=1,
    )
    try:
        record = await deliverer.deliver(
            key=message.dedup_key, kind=DeliveryKind.page, incident_id="inc-1", channel="hook", message=message, level=1
        )
    finally:
        await http.close()
    return record, sleeps, published, dead


class RedisDown:
    """Redis that is unreachable: every call fails at once. Paging must go on without it (fail open)."""

    def __init__(self) -> None:
        self.calls = 0

    async def exists(self, *keys: str) -> int:
        self.calls += 1
        raise ConnectionError("Redis is down")

    async def set(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        raise ConnectionError("Redis is down")

    def pipeline(self, transaction: bool = True) -> RedisDown:
        return self

    async def __aenter__(self) -> RedisDown:
        self.calls += 1
        raise ConnectionError("Redis is down")

    async def __aexit__(self, *exc: object) -> None:
        return None


def run(body: Any) -> Any:
    async def main() -> Any:
        async with Target() as target:
            return await body(target)

    return asyncio.run(main())


def test_5xx_is_retried_with_jittered_exponential_backoff_then_delivered_once():
    async def body(target: Target) -> Any:
        target.fail["/hook"] = [500, 502, 503]
        return await deliver(target, "/hook"), target.hits["/hook"]

    (record, sleeps, published, dead), hits = run(body)
    assert record is not None and record.status is DeliveryStatus.delivered and record.attempts == 4 and hits == 4
    assert [d.status for d in published] == [DeliveryStatus.delivered] and dead == []
    for attempt, delay in enumerate(sleeps, start=1):
        assert 0.5 * 2 ** (attempt - 1) <= delay <= 1.5 * 2 ** (attempt - 1)


def test_429_waits_for_retry_after():
    async def body(target: Target) -> Any:
        target.fail["/hook"] = [429]
        return await deliver(target, "/hook")

    record, sleeps, _, _ = run(body)
    assert record is not None and record.status is DeliveryStatus.delivered and sleeps == [7.0]


def test_other_4xx_is_not_retried_and_the_last_failure_is_dead_lettered():
    async def body(target: Target) -> Any:
        target.fail["/bad"] = [400]
        target.fail["/down"] = [500] * 10
        return await deliver(target, "/bad"), await deliver(target, "/down", attempts=3), target.hits

    (bad, bad_sleeps, _, bad_dead), (down, _, _, down_dead), hits = run(body)
    assert bad is not None and bad.status is DeliveryStatus.dead_lettered and bad.attempts == 1 and bad_sleeps == []
    assert "HTTP 400" in (bad.error or "") and [d.delivery_id for d in bad_dead] == ["inc-1/g/r0/l1/hook/-"]
    assert down is not None and down.attempts == 3 and len(down_dead) == 1 and hits == {"/bad": 1, "/down": 3}
