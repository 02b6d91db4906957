"""The `resolve_incident` step: resolves the incident, as a person would through the API."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from schemas.fields import Spec
from schemas.steps.base import Step


class ResolveAction(Spec):
    comment: str = Field("resolved by runbook", max_length=2000)


class ResolveStep(Step):
    """A step that resolves the incident, as a person would: `resolve_incident: {comment}`."""

    action: ClassVar[str] = "resolve_incident"
    resolve_incident: ResolveAction
