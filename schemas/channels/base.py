"""What the settings of every notification channel share: overridable message templates and a rate limit.

Each channel kind (`type` in the notifications file) is one module beside this one, holding a subclass of
`ChannelParams` with a `type: Literal[...]` field; `schemas/channels/__init__.py` joins them into the
`Channel` union the notifications file is validated with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from schemas.fields import Spec


class Templates(Spec):
    """Overrides of a channel's message templates (sandboxed Jinja2; docs/guides/paging.md says what they see)."""

    title: str | None = Field(None, max_length=2000)
    text: str | None = Field(None, max_length=20000)
    html: str | None = Field(None, max_length=50000)


class ChannelParams(Spec):
    """Base of every channel kind's settings: `templates` and `rate_per_minute` (deliveries a minute across
    workers). A kind adds its `type: Literal["<kind>"]` and its own fields."""

    if TYPE_CHECKING:  # each kind declares it as a Literal; not a field here, so field order stays as it was
        type: str

    templates: Templates = Field(default_factory=Templates)
    rate_per_minute: int = Field(
        60, ge=1, le=100_000, description="Deliveries a minute; more wait their turn, none are dropped."
    )
