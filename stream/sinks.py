"""Topics folded into Redis as they are: `changes` (suspects for new incidents), `action-results` (the incident
timeline's actions) and `notifications` (its pages). One record is one fact; each fold is idempotent."""

from __future__ import annotations

from typing import Any

from adapters.action_log import ActionLog, NotificationLog
from adapters.change_store import ChangeStore
from schemas import ChangeEvent
from schemas.notification import Delivery
from schemas.runbook import ActionResult
from stream.barrier import with_redis_retries


class Sinks:
    def __init__(self, changes: ChangeStore, actions: ActionLog, notifications: NotificationLog) -> None:
        self.changes = changes
        self.actions = actions
        self.notifications = notifications

    async def change(self, event: Any) -> None:
        await self.changes.record(ChangeEvent.model_validate_json(event.value))

    async def result(self, event: Any) -> None:
        result = ActionResult.model_validate_json(event.value)
        await with_redis_retries(lambda: self.actions.record(result))

    async def delivery(self, event: Any) -> None:
        delivery = Delivery.model_validate_json(event.value)
        await with_redis_retries(lambda: self.notifications.record(delivery))
