"""Notification channels: one module per kind (webhook, slack, email, pagerduty, opsgenie), each with its
`send`, `describe` and `lint`, chosen by the channel's `type` in registry.py; `Channels` sends on a named
channel of the notifications file. docs/reference/channels.md shows how to add a kind."""

from actions.channels.base import ChannelKind, ChannelLintEnv, Message, Outgoing, Rendered, Transport, render_message
from actions.channels.dispatch import Channels
from actions.channels.email import SmtpSettings
from actions.channels.registry import CHANNELS, kind_of
from actions.channels.slack import slack_escape

__all__ = [
    "CHANNELS",
    "ChannelKind",
    "ChannelLintEnv",
    "Channels",
    "Message",
    "Outgoing",
    "Rendered",
    "SmtpSettings",
    "Transport",
    "kind_of",
    "render_message",
    "slack_escape",
]
