"""The `notify` step: a message on a channel of the notifications file (actions/steps/notify.py sends it)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from schemas.fields import Spec
from schemas.steps.base import Step


class NotifyAction(Spec):
    channel: str = Field(min_length=1, max_length=64, description="A channel from the notifications file.")
    message: str = Field(min_length=1, max_length=8000, description="Template of the message text.")


class NotifyStep(Step):
    """A step that sends a message on a channel of the notifications file: `notify: {channel, message}`."""

    action: ClassVar[str] = "notify"
    notify: NotifyAction
