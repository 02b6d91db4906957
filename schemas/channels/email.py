"""The `email` channel's settings: the sender and fixed recipients (actions/channels/email.py sends over SMTP)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from schemas.channels.base import ChannelParams


class EmailChannel(ChannelParams):
    """Mail over SMTP (the `smtp_*` settings): plain text and HTML. `to` adds fixed recipients."""

    type: Literal["email"]
    sender: str = Field(alias="from", min_length=3, max_length=320, description="The From address.")
    to: list[str] = Field(
        default_factory=list, description="Fixed recipients, besides the address of each person paged on it."
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
