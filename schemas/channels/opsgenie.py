"""The `opsgenie` channel's settings: an API key for Opsgenie's alert API (actions/channels/opsgenie.py calls it)."""

from __future__ import annotations

from typing import Literal

from schemas.channels.base import ChannelParams
from schemas.fields import SecretRef


class OpsgenieChannel(ChannelParams):
    """Opsgenie's alert API: create (alias = the incident id), notes for updates, acknowledge, close."""

    type: Literal["opsgenie"]
    api_key: SecretRef
    url: str = "https://api.opsgenie.com/v2/alerts"
