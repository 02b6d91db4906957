"""The `annotate` step: a note on the incident's timeline (an `annotation` action result)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from schemas.fields import Spec
from schemas.steps.base import Step


class AnnotateAction(Spec):
    text: str = Field(min_length=1, max_length=4000, description="The note for the incident's timeline (a template).")


class AnnotateStep(Step):
    """A step that adds a note to the incident's timeline: `annotate: {text}`."""

    action: ClassVar[str] = "annotate"
    changes_nothing: ClassVar[bool] = True
    annotate: AnnotateAction
