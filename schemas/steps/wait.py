"""The `wait` step: the run sleeps for a duration, or until the incident resolves (bounded by the timeout)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from schemas.fields import Duration, Spec
from schemas.steps.base import Step


class WaitAction(Spec):
    duration: Duration | None = Field(None, alias="for", description="Sleep this long.")
    until: Literal["resolved"] | None = Field(
        None, description="Wait until the incident resolves (bounded by the step timeout)."
    )

    @model_validator(mode="after")
    def _one(self) -> WaitAction:
        if (self.duration is None) == (self.until is None):
            raise ValueError("wait takes exactly one of `for: <duration>` or `until: resolved`")
        return self


class WaitStep(Step):
    """A step that waits a duration or until the incident resolves: `wait: {for: 30s}` or `wait: {until: resolved}`."""

    action: ClassVar[str] = "wait"
    changes_nothing: ClassVar[bool] = True
    parks: ClassVar[bool] = True
    wait: WaitAction
