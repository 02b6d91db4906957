"""A step whose own Redis read fails did nothing: it fails (retryably) instead of stopping the run's visit,
which would leave its claim `started` and make the next holder report a step that never ran as unknown."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from actions.steps.base import StepFailed
from firebreak.worker import Worker
from schemas.errors import Reason


class _DeadStore:
    async def get(self, incident_id: str) -> None:
        raise RedisConnectionError("Connection closed by server.")


def test_resolve_incident_fails_retryably_when_redis_cannot_say_whether_the_incident_is_open() -> None:
    sent: list[object] = []
    worker = SimpleNamespace(store=_DeadStore(), alert_events=SimpleNamespace(send=lambda **kw: sent.append(kw)))
    with pytest.raises(StepFailed) as failed:
        asyncio.run(Worker.resolve_incident(worker, "inc-1", "runbook:fix", "fixed"))  # type: ignore[arg-type]
    assert failed.value.reason is Reason.unavailable and failed.value.reason.retryable
    assert "not resolved" in str(failed.value) and sent == []
