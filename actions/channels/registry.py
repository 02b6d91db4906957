"""Which code sends each channel `type`: one line per kind. Adding a kind is its module beside this one and
its line below (and its settings model in schemas/channels/, one line in `Channel` there)."""

from __future__ import annotations

from typing import Any

from actions.channels import email, opsgenie, pagerduty, slack, webhook
from actions.channels.base import ChannelKind
from schemas.channels import ChannelParams

CHANNELS: dict[str, ChannelKind[Any]] = {
    "webhook": webhook.Webhook(),
    "slack": slack.Slack(),
    "email": email.Email(),
    "pagerduty": pagerduty.PagerDuty(),
    "opsgenie": opsgenie.Opsgenie(),
}


def kind_of(spec: ChannelParams) -> ChannelKind[Any]:
    """The kind that sends a channel with these settings (by its `type`); KeyError for a type with no line above."""
    return CHANNELS[spec.type]
