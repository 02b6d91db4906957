"""What runbooks hand to the notification layer, and the error every channel raises.

Every delivery carries a dedup key, so a retried or redelivered notification can be recognised by the
receiver (`Idempotency-Key` header, PagerDuty's `dedup_key`, Opsgenie's alias) and by Firebreak.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from adapters.secrets import Secrets
from schemas.errors import ActionError, Reason
from schemas.runbook import SecretRef

if TYPE_CHECKING:
    from actions.channels import Channels


class NotifyError(ActionError, RuntimeError):
    """A delivery that failed, with its `reason` (`retryable` follows it) and, for a 429 or 503 with a
    Retry-After header, how many seconds the receiver asked to wait (`retry_after`)."""

    def __init__(self, message: str, reason: Reason, retry_after: float | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


def secret_value(value: str | SecretRef, secrets: Secrets) -> str:
    """A literal value as is; a secret reference resolved and written into its format."""
    if isinstance(value, SecretRef):
        return value.format.replace("{}", secrets.get(value.secret), 1)
    return value


class Notifier:
    """A runbook's `notify` step and the executor's pages: one attempt on one channel (the caller retries)."""

    def __init__(self, channels: Channels, links: Callable[[str], dict[str, str]] | None = None) -> None:
        self.channels = channels
        self.links = links

    def knows(self, channel: str) -> bool:
        return channel in self.channels.channels

    async def send(
        self, channel: str, text: str, incident: dict[str, Any], dedup_key: str, timeout: float = 10.0
    ) -> dict[str, Any]:
        from actions.channels import Message

        message = Message(
            kind="message",
            dedup_key=dedup_key,
            incident=incident,
            message=text,
            links=self.links(incident["id"]) if self.links else {},
        )
        result = await self.channels.send(channel, message, timeout=timeout)
        return {"channel": channel, "dedup_key": dedup_key, **result}
