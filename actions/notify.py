"""Handing a message to a notification channel. Every delivery carries a dedup key, so a retried or
redelivered notification can be recognised by the receiver (`Idempotency-Key` header) and by Firebreak."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from schemas.notification import Channel
from schemas.runbook import SecretRef

from actions.outbound import HttpResult, OutboundHttp
from actions.secrets import Secrets


class NotifyError(RuntimeError):
    """A delivery that failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def secret_value(value: str | SecretRef, secrets: Secrets) -> str:
    """A literal value as is; a secret reference resolved and written into its format."""
    if isinstance(value, SecretRef):
        return value.format.replace("{}", secrets.get(value.secret), 1)
    return value


def classify(result: HttpResult) -> NotifyError | None:
    """None for a 2xx; else the error, retryable on 5xx, 408 and 429 (with its Retry-After)."""
    if 200 <= result.status < 300:
        return None
    retry_after = None
    if result.status == 429:
        retry_after = 1.0
    retryable = result.status >= 500 or result.status in (408, 429)
    return NotifyError(f"receiver answered HTTP {result.status}", retryable, retry_after)


class Notifier:
    def __init__(self, channels: dict[str, Channel], http: OutboundHttp, secrets: Secrets) -> None:
        self.channels = channels
        self.http = http
        self.secrets = secrets

    def knows(self, channel: str) -> bool:
        return channel in self.channels

    async def send(self, channel: str, text: str, incident: dict[str, Any], dedup_key: str, timeout: float = 10.0) -> dict[str, Any]:
        spec = self.channels.get(channel)
        if spec is None:
            raise NotifyError(f"channel {channel!r} is not in the notifications file; add it or fix the name", False)
        payload = {"dedup_key": dedup_key, "channel": channel, "text": text, "incident": incident}
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {name: secret_value(v, self.secrets) for name, v in spec.headers.items()}
        headers.update({"Content-Type": "application/json", "Idempotency-Key": dedup_key})
        if spec.hmac_secret:
            key = self.secrets.get(spec.hmac_secret).encode()
            headers["X-Firebreak-Signature"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        result = await self.http.request("POST", secret_value(spec.url, self.secrets), headers=headers, data=body, timeout=timeout)
        error = classify(result)
        if error is not None:
            raise error
        return {"channel": channel, "status": result.status, "dedup_key": dedup_key}
