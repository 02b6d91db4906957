"""Runbook step kinds: one module per action, each a `Step` subclass whose one extra field is the action.

The YAML stays as it always was: a step is its common fields plus exactly one action key,

```yaml
- id: restart
  http: {url: "https://deploy.internal/restart"}
  retries: {attempts: 2}
```

`AnyStep` picks the kind by which action key is present (a callable `Discriminator` with one `Tag` per kind).
A step with no action key or several is refused with the message runbooks always got, after the errors of
its fields; errors name the same locations as before (`steps.0.http.url`, not `steps.0.http.http.url`).

Adding a kind: its module here and one line in `AnyStep` below; its run, describe and lint are one module in
actions/steps/ and one line in actions/steps/registry.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Union, get_args

from pydantic import (
    Discriminator,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticKnownError

from schemas.steps.annotate import AnnotateAction, AnnotateStep
from schemas.steps.approval import ApprovalAction, ApprovalStep
from schemas.steps.base import STEP_ID, OnFailure, Retries, RiskApproval, Step
from schemas.steps.command import CommandSpec, CommandStep
from schemas.steps.http import HttpAction, HttpStep
from schemas.steps.notify import NotifyAction, NotifyStep
from schemas.steps.resolve_incident import ResolveAction, ResolveStep
from schemas.steps.wait import WaitAction, WaitStep


def _action_of(value: Any) -> str | None:
    """The tag of a step: its one action key that is given (not null), or None for none or several."""
    if isinstance(value, dict):
        given = [key for key in ACTION_FIELDS if value.get(key) is not None]
        return given[0] if len(given) == 1 else None
    return getattr(value, "action", None)


_Kinds = Union[  # noqa: UP007 - one kind a line: adding one is adding a line
    Annotated[HttpStep, Tag(HttpStep.action)],
    Annotated[CommandStep, Tag(CommandStep.action)],
    Annotated[NotifyStep, Tag(NotifyStep.action)],
    Annotated[ApprovalStep, Tag(ApprovalStep.action)],
    Annotated[WaitStep, Tag(WaitStep.action)],
    Annotated[AnnotateStep, Tag(AnnotateStep.action)],
    Annotated[ResolveStep, Tag(ResolveStep.action)],
]
KINDS: tuple[type[Step], ...] = tuple(get_args(member)[0] for member in get_args(_Kinds))
"""Every step kind, in the order the "exactly one action" message lists them."""
ACTION_FIELDS: tuple[str, ...] = tuple(kind.action for kind in KINDS)
_FIELD_ORDER = ("id", *ACTION_FIELDS, *Step.model_fields)  # a step's fields as they were declared on one model


class _Refused(Step):
    @model_validator(mode="after")
    def _checks(self) -> _Refused:  # replaces Step._checks: the missing action is the first thing to say
        given = [f for f in ACTION_FIELDS if getattr(self, f) is not None]
        raise ValueError(
            f"a step has exactly one action of {', '.join(ACTION_FIELDS)}; "
            f"step {self.id!r} has {', '.join(given) if given else 'none'}"
        )


def _optional(kind: type[Step]) -> Any:
    annotation: Any = kind.model_fields[kind.action].annotation
    return (annotation | None, None)


_Malformed: type[Step] = create_model(  # every kind's action field, optional: what one Step model was before the kinds
    "_Malformed",
    __base__=_Refused,
    **{kind.action: _optional(kind) for kind in KINDS},
)
"""A step with no action or several: validates every field as one model did, then refuses the step."""


def _as_before(exc: ValidationError, tag: str | None) -> ValidationError:
    """The errors as one Step model gave them: without the kind's tag in front of each location, in the order
    of the fields (the action right after `id`)."""
    errors: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"][1:] if tag is not None and error["loc"][:1] == (tag,) else error["loc"]
        detail: InitErrorDetails = {"type": error["type"], "loc": loc, "input": error["input"]}
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        errors.append(detail)

    def position(e: InitErrorDetails) -> int:
        first = e["loc"][0] if e["loc"] else None
        return _FIELD_ORDER.index(first) if first in _FIELD_ORDER else len(_FIELD_ORDER)

    return ValidationError.from_exception_data(exc.title, sorted(errors, key=position))


def _one_action(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    if isinstance(value, dict):
        tag = _action_of(value)
        if tag is None:
            try:
                _Malformed.model_validate(value)
            except ValidationError as exc:
                raise _as_before(exc, None) from None
            raise AssertionError("unreachable: _Malformed refuses every step")
        # other action keys written as null were allowed (absent) and stay so
        value = {k: v for k, v in value.items() if k == tag or k not in ACTION_FIELDS}
    elif not isinstance(value, Step):
        raise PydanticKnownError("model_type", {"class_name": "Step"})
    try:
        return handler(value)
    except ValidationError as exc:
        raise _as_before(exc, _action_of(value)) from None


AnyStep = Annotated[_Kinds, Discriminator(_action_of), WrapValidator(_one_action)]
"""A step of any kind, chosen by its action key (a pydantic discriminated union)."""

STEP: TypeAdapter[Step] = TypeAdapter(AnyStep)
"""Validates one step of any kind: `STEP.validate_python({"id": "a", "annotate": {"text": "x"}})`."""

__all__ = [
    "ACTION_FIELDS",
    "KINDS",
    "STEP",
    "STEP_ID",
    "AnnotateAction",
    "AnnotateStep",
    "AnyStep",
    "ApprovalAction",
    "ApprovalStep",
    "CommandSpec",
    "CommandStep",
    "HttpAction",
    "HttpStep",
    "NotifyAction",
    "NotifyStep",
    "OnFailure",
    "ResolveAction",
    "ResolveStep",
    "Retries",
    "RiskApproval",
    "Step",
    "WaitAction",
    "WaitStep",
]
