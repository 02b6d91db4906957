"""Notification channel kinds: one module per `type` of the notifications file, holding that kind's settings.

`Channel` is the union the notifications file validates a channel with, chosen by its `type`. Adding a kind:
its module here and one line in `Channel` below; its sender, `describe` and `lint` are one module in
actions/channels/ and one line in actions/channels/registry.py (docs/reference/channels.md shows both).
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from schemas.channels.base import ChannelParams, Templates
from schemas.channels.email import EmailChannel
from schemas.channels.opsgenie import OpsgenieChannel
from schemas.channels.pagerduty import PagerDutyChannel
from schemas.channels.slack import SlackChannel
from schemas.channels.webhook import WebhookChannel

Channel = Annotated[
    Union[  # noqa: UP007 - one kind a line: adding one is adding a line
        WebhookChannel,
        SlackChannel,
        EmailChannel,
        PagerDutyChannel,
        OpsgenieChannel,
    ],
    Field(discriminator="type"),
]
"""One channel of the notifications file, by its `type` (the order is the order error messages list the types in)."""

__all__ = [
    "Channel",
    "ChannelParams",
    "EmailChannel",
    "OpsgenieChannel",
    "PagerDutyChannel",
    "SlackChannel",
    "Templates",
    "WebhookChannel",
]
