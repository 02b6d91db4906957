"""Notification channels, as the notifications file declares them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.runbook import SECRET_NAME, SecretRef


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookChannel(_Spec):
    """JSON POSTed to a URL; with `hmac_secret`, signed in `X-Firebreak-Signature: sha256=<hex>` over the body."""

    type: Literal["webhook"] = "webhook"
    url: str | SecretRef
    headers: dict[str, str | SecretRef] = Field(default_factory=dict)
    hmac_secret: str | None = Field(None, pattern=SECRET_NAME, description="Name of the secret that signs the body.")


Channel = WebhookChannel


class NotificationsFile(_Spec):
    channels: dict[str, Channel] = Field(default_factory=dict)

    @field_validator("channels")
    @classmethod
    def _names(cls, value: dict[str, Channel]) -> dict[str, Channel]:
        import re

        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name):
                raise ValueError(f"channel name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
        return value
