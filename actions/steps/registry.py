"""Which code runs each step action: one line per kind. Adding a kind is its module beside this one and its
line below (and its step model in schemas/steps/, one line in `AnyStep` there)."""

from __future__ import annotations

from typing import Any

from actions.steps import annotate, approval, command, http, notify, resolve_incident, wait
from actions.steps.base import StepKind
from schemas.steps import Step

STEPS: dict[str, StepKind[Any]] = {
    "http": http.Http(),
    "command": command.Command(),
    "notify": notify.Notify(),
    "approval": approval.Approval(),
    "wait": wait.Wait(),
    "annotate": annotate.Annotate(),
    "resolve_incident": resolve_incident.ResolveIncident(),
}


def kind_of(step: Step) -> StepKind[Any]:
    """The kind that runs a step (by its `action`); KeyError for an action with no line above."""
    return STEPS[step.action]
