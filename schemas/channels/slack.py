"""The `slack` channel's settings: a Slack incoming webhook (actions/channels/slack.py sends Block Kit to it)."""

from __future__ import annotations

from typing import Literal

from schemas.channels.base import ChannelParams
from schemas.fields import SecretRef


class SlackChannel(ChannelParams):
    """A Slack incoming webhook (the URL is a secret): Block Kit messages with ack/resolve links."""

    type: Literal["slack"]
    url: str | SecretRef
