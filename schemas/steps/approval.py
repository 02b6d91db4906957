"""The `approval` step: the run waits for a person's decision, or the default when nobody answers in time."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field

from schemas.fields import Duration, Spec
from schemas.steps.base import Step


class ApprovalAction(Spec):
    prompt: str = Field(
        min_length=1, max_length=2000, description="What the people asked to approve read (a template)."
    )
    timeout: Duration = Field(timedelta(minutes=30))
    default: Literal["approve", "reject"] = Field("reject", description="The decision when nobody answers in time.")


class ApprovalStep(Step):
    """A step that waits for a person's decision, or its default at the timeout: `approval: {prompt, timeout, default}`."""

    action: ClassVar[str] = "approval"
    changes_nothing: ClassVar[bool] = True
    parks: ClassVar[bool] = True
    approval: ApprovalAction
