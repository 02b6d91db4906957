"""The loop the executor and the pager share: poll Redis for due work, drive each item in its own task,
wake early when told, and on shutdown take nothing new and give the items in hand a grace period."""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger("firebreak.actions")


class PollLoop(abc.ABC):
    name = "loop"

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.tasks: dict[Any, asyncio.Task[None]] = {}
        self.stopping = False
        self.wake = asyncio.Event()

    @abc.abstractmethod
    async def poll(self) -> int:
        """Start tasks for the due items this worker can take; how many it took."""

    def redis_failed(self, exc: RedisError) -> None:
        log.warning("%s cannot reach Redis (%s); nothing due starts until it is back", self.name, exc)

    async def run_forever(self) -> None:
        log.info("%s started", self.name)
        while True:
            try:
                await self.poll()
            except RedisError as exc:
                self.redis_failed(exc)
            except Exception:
                log.exception("%s: looking for due work failed; trying again in %g s", self.name, self.poll_seconds)
            try:
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass
            self.wake.clear()

    async def drain(self) -> None:
        """Wait for the items in hand (tests and shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)

    async def shutdown(self, grace_seconds: float) -> None:
        """Take nothing new; give the items in hand `grace_seconds`. An item cut off here is taken up by
        another worker when its lease runs out."""
        self.stopping = True
        if self.tasks:
            log.info(
                "%s stopping: waiting up to %g s for %d item(s) in hand", self.name, grace_seconds, len(self.tasks)
            )
            await asyncio.wait(list(self.tasks.values()), timeout=grace_seconds)
