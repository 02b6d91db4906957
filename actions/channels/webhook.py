"""`type: webhook`: the message as JSON POSTed to a URL, optionally signed.

Body (keys sorted): `dedup_key`, `kind`, `channel`, `address`, `title`, `text`, `level`, `recipient`, `links`,
`incident`. Headers: the channel's `headers`, `Idempotency-Key: <dedup key>`, and with `hmac_secret`
`X-Firebreak-Signature: sha256=<hex HMAC-SHA256 of the body>` (the scheme GitHub's webhooks use).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from actions.channels.base import ChannelKind, ChannelLintEnv, Outgoing, Transport, shown
from schemas.channels import WebhookChannel
from schemas.fields import SecretRef


class Webhook(ChannelKind[WebhookChannel]):
    """Sends `webhook` channels; returns `{"status": <HTTP status>}`."""

    params = WebhookChannel

    async def send(self, out: Transport, spec: WebhookChannel, outgoing: Outgoing) -> dict[str, Any]:
        message, rendered = outgoing.message, outgoing.rendered
        payload = {
            "dedup_key": message.dedup_key,
            "kind": message.kind,
            "channel": outgoing.channel,
            "address": outgoing.address,
            "title": rendered.title,
            "text": rendered.text,
            "level": message.level,
            "recipient": message.recipient,
            "links": message.links,
            "incident": message.incident,
        }
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {k: out.secret(v) for k, v in spec.headers.items()}
        headers["Idempotency-Key"] = message.dedup_key
        if spec.hmac_secret:
            key = out.secrets.get(spec.hmac_secret).encode()
            headers["X-Firebreak-Signature"] = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        secret = frozenset(k for k, v in spec.headers.items() if isinstance(v, SecretRef))
        result = await out.post(out.secret(spec.url), body, headers, outgoing.timeout, "the webhook", secret)
        return {"status": result.status}

    def describe(self, spec: WebhookChannel) -> str:
        signed = f", signed with secret {spec.hmac_secret}" if spec.hmac_secret else ""
        return f"webhook: JSON POSTed to {shown(spec.url)}{signed}"

    def lint(self, spec: WebhookChannel, env: ChannelLintEnv) -> list[str]:
        signing = (spec.hmac_secret,) if spec.hmac_secret else ()
        return [*env.secret_problems(spec.url, *spec.headers.values(), names=signing), *env.host_problems(spec.url)]
