"""Delivering one notification: dedup, a per-channel rate limit, retries with backoff and jitter, dead-letter.

- Dedup: a delivery's key (incident, escalation, round, level, channel, address; or the runbook step) is
  marked in Redis once the receiver accepted it; a retried or redelivered notification with that key is
  not sent again. Receivers see the key too (`Idempotency-Key`, PagerDuty `dedup_key`, Opsgenie alias).
- Retries: when the failure's Reason is retryable (schemas/errors.py: 5xx, 408, 429, SMTP 4xx, timeouts and
  connection errors), exponential backoff with jitter (0.5x to 1.5x), capped; a `Retry-After` (429, 503) is
  waited instead; any other failure (other 4xx, allow-lists, templates, secrets, configuration) is not retried.
- After the last attempt: a `dead_lettered` Delivery on `notifications` and a record on `dead-letter`.
- Rate limit: at most `rate_per_minute` deliveries per channel per minute across workers; more wait for the
  next minute, none are dropped.
- Redis down: paging fails open (the page is sent; the receiver's dedup key absorbs a repeat).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from actions.channels import Channels, Message
from actions.notify import NotifyError
from adapters.logs import context as log_context
from adapters.metrics import NOTIFICATION_LATENCY, NOTIFICATIONS
from adapters.redis_errors import REDIS_UNAVAILABLE, redis_backoff
from schemas.errors import ActionError, Reason
from schemas.notification import Delivery, DeliveryKind, DeliveryStatus

log = logging.getLogger("firebreak.notify")

MARK_SECONDS = 7 * 86400


class Deliverer:
    def __init__(
        self,
        channels: Channels,
        client: aioredis.Redis,
        prefix: str,
        publish: Callable[[Delivery], Awaitable[None]],
        dead_letter: Callable[[Delivery], Awaitable[None]],
        *,
        attempts: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.channels = channels
        self.redis = client
        self.prefix = prefix
        self.publish = publish
        self.dead_letter = dead_letter
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.sleep = sleep
        self._unmarked: set[str] = set()  # sent while Redis was away; marked by a background task once it is back
        self._marking: asyncio.Task[None] | None = None

    async def _delivered(self, key: str) -> bool:
        if key in self._unmarked:
            return True
        try:
            return bool(await self.redis.exists(f"{self.prefix}delivered:{key}"))
        except RedisError as exc:
            log.warning("cannot check delivery %s in Redis (%s): sending (the receiver dedups)", key, exc)
            return False

    async def _mark(self, key: str) -> None:
        """Record a sent message: the marker is what keeps a retry of its escalation from sending it again.
        While Redis is away this process remembers the key (so its own retries skip it) and a background task
        writes the marker once Redis is back; delivery itself does not wait (paging fails open)."""
        try:
            await self._set_marker(key)
        except REDIS_UNAVAILABLE as exc:
            log.warning("cannot mark delivery %s in Redis (%s); remembering it here until Redis is back", key, exc)
            self._unmarked.add(key)
            if self._marking is None or self._marking.done():
                self._marking = asyncio.create_task(self._mark_later())
        except RedisError as exc:
            log.warning("cannot mark delivery %s in Redis (%s)", key, exc)

    async def _set_marker(self, key: str) -> None:
        await self.redis.set(f"{self.prefix}delivered:{key}", "1", ex=MARK_SECONDS)

    async def _mark_later(self) -> None:
        attempt = 0
        while self._unmarked:
            key = next(iter(self._unmarked))
            try:
                await self._set_marker(key)
            except REDIS_UNAVAILABLE:
                await asyncio.sleep(redis_backoff(attempt))
                attempt += 1
                continue
            except RedisError as exc:
                log.warning("cannot mark delivery %s in Redis (%s)", key, exc)
            self._unmarked.discard(key)
            attempt = 0

    async def _rate_limit(self, channel: str, per_minute: int) -> None:
        while True:
            window = int(time.time() // 60)
            key = f"{self.prefix}rate:{channel}:{window}"
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, 120)
                    count, _ = await pipe.execute()
            except RedisError:
                return  # fail open
            if count <= per_minute:
                return
            await self.sleep(max(0.05, (window + 1) * 60 - time.time()))

    def _delay(self, attempt: int, error: NotifyError | None) -> float:
        if error is not None and error.retry_after is not None:
            return min(error.retry_after, self.max_backoff)
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random())

    async def deliver(
        self,
        *,
        key: str,
        kind: DeliveryKind,
        incident_id: str,
        channel: str,
        message: Message,
        address: str = "",
        user: str | None = None,
        level: int | None = None,
        caused_at: datetime | None = None,
    ) -> Delivery | None:
        """Send unless already delivered; returns the Delivery recorded, or None for a duplicate."""
        if await self._delivered(key):
            return None
        try:
            spec = self.channels.spec(channel)
        except NotifyError as exc:
            return await self._fail(
                key, kind, incident_id, channel, "unknown", address, user, level, 0, str(exc), exc.reason
            )
        await self._rate_limit(channel, spec.rate_per_minute)
        error, reason = "not attempted", Reason.config
        for attempt in range(1, self.attempts + 1):
            retry: NotifyError | None = None
            try:
                await self.channels.send(channel, message, address, timeout=self.timeout)
                await self._mark(key)
                now = datetime.now(UTC)
                latency = (now - caused_at).total_seconds() * 1000 if caused_at else None
                record = Delivery(
                    delivery_id=key,
                    kind=kind,
                    incident_id=incident_id,
                    channel=channel,
                    channel_type=spec.type,
                    address=address,
                    user=user,
                    level=level,
                    status=DeliveryStatus.delivered,
                    attempts=attempt,
                    at=now,
                    latency_ms=latency,
                )
                NOTIFICATIONS.labels(spec.type, kind.value, "delivered").inc()
                if latency is not None and kind is DeliveryKind.page and level == 1:
                    NOTIFICATION_LATENCY.observe(latency / 1000)
                await self.publish(record)
                return record
            except ActionError as exc:  # NotifyError, Refused, SecretMissing, RenderError
                error, reason = str(exc), exc.reason
                if not reason.retryable:
                    break
                retry = exc if isinstance(exc, NotifyError) else None
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                reason = Reason.timeout if isinstance(exc, TimeoutError) else Reason.connection
            if attempt < self.attempts:
                delay = self._delay(attempt, retry)
                log.info(
                    "delivery %s to %s failed (%s); attempt %d of %d in %.1f s",
                    key,
                    channel,
                    error,
                    attempt + 1,
                    self.attempts,
                    delay,
                    extra=log_context(incident_id=incident_id, channel=channel, delivery_id=key),
                )
                await self.sleep(delay)
        return await self._fail(
            key, kind, incident_id, channel, spec.type, address, user, level, attempt, error, reason
        )

    async def _fail(
        self,
        key: str,
        kind: DeliveryKind,
        incident_id: str,
        channel: str,
        channel_type: str,
        address: str,
        user: str | None,
        level: int | None,
        attempts: int,
        error: str,
        reason: Reason,
    ) -> Delivery:
        record = Delivery(
            delivery_id=key,
            kind=kind,
            incident_id=incident_id,
            channel=channel,
            channel_type=channel_type,
            address=address,
            user=user,
            level=level,
            status=DeliveryStatus.dead_lettered,
            attempts=attempts,
            error=error,
            reason=reason,
            at=datetime.now(UTC),
        )
        NOTIFICATIONS.labels(channel_type, kind.value, "dead_lettered").inc()
        log.error(
            "delivery %s to %s dead-lettered after %d attempt(s): %s",
            key,
            channel,
            attempts,
            error,
            extra=log_context(incident_id=incident_id, channel=channel, delivery_id=key),
        )
        await self.publish(record)
        await self.dead_letter(record)
        return record
