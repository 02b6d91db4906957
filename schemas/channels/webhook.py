"""The `webhook` channel's settings: JSON POSTed to a URL, optionally signed (actions/channels/webhook.py sends it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.channels.base import ChannelParams
from schemas.fields import SECRET_NAME, SecretRef


class WebhookChannel(ChannelParams):
    """JSON POSTed to a URL; with `hmac_secret`, signed in `X-Firebreak-Signature: sha256=<hex>` over the body."""

    type: Literal["webhook"] = "webhook"
    url: str | SecretRef
    headers: dict[str, str | SecretRef] = Field(
        default_factory=dict, description="Request headers; a value may be a secret, `{secret: NAME}`."
    )
    hmac_secret: str | None = Field(None, pattern=SECRET_NAME, description="Name of the secret that signs the body.")
