"""The `pagerduty` channel's settings: an Events API v2 routing key (actions/channels/pagerduty.py sends events)."""

from __future__ import annotations

from typing import Literal

from schemas.channels.base import ChannelParams
from schemas.fields import SecretRef


class PagerDutyChannel(ChannelParams):
    """PagerDuty Events API v2: trigger, acknowledge and resolve with `dedup_key` = the incident id."""

    type: Literal["pagerduty"]
    routing_key: SecretRef
    url: str = "https://events.pagerduty.com/v2/enqueue"
