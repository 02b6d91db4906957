"""What every runbook step has, whatever its action: its id, `when`, timeout, retries, `on_failure`,
`idempotent` and risk class. Each action kind is one module beside this one: a `Step` subclass with the
action's key as its one extra field (`http: HttpAction`), chosen by schemas/steps/__init__.py.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from schemas.fields import Duration, Spec

STEP_ID = r"^[a-z][a-z0-9_]{0,62}$"


class OnFailure(StrEnum):
    stop = "stop"
    continue_ = "continue"
    page = "page"


class RiskApproval(Spec):
    """Who must approve a `risk: high` step, and for how long the request stands."""

    required: int = Field(1, ge=1, le=2, description="Approvals needed, each from a different person (1 or 2).")
    expires: Duration = Field(
        timedelta(minutes=30), description="Unanswered this long, the request expires and the step does not run."
    )


class Retries(Spec):
    attempts: int = Field(0, ge=0, le=10, description="Retries after the first attempt.")
    backoff: Duration = Field(timedelta(seconds=1), description="Wait before the first retry; doubles each time.")
    max_backoff: Duration = Field(timedelta(seconds=60))


class Step(Spec):
    """One step of a runbook: the fields every kind shares. A kind (schemas/steps/<kind>.py) adds its action
    field, named by `action`. `Step.model_validate(data)` returns the kind the data names (any one of them)."""

    action: ClassVar[str]
    """The action's key in the YAML (`http`, `command`, ...): the kind's one field, its tag in the union, the
    `action` of its step records and the label of its metrics."""
    changes_nothing: ClassVar[bool] = False
    """Nothing outside Firebreak changes when it runs, so there is nothing to gate: it cannot be `risk: high`."""
    parks: ClassVar[bool] = False
    """It waits rather than acts (waits and approvals): the run parks until it wakes, and running it again
    after a crash is harmless even when not declared `idempotent`. The run core (correlation/runs.py) and the
    runner both read it here."""

    id: str = Field(pattern=STEP_ID, description="Unique in the runbook; later templates read steps.<id>.output.")
    when: str | None = Field(None, max_length=2000, description="Sandboxed expression; the step is skipped when false.")
    timeout: Duration = Field(timedelta(seconds=30))
    retries: Retries = Field(
        default_factory=Retries,
        description="Attempts after a failed one: `{attempts: 2, backoff: 1s, max_backoff: 60s}` (backoff doubles).",
    )
    on_failure: OnFailure = OnFailure.stop
    idempotent: bool = Field(False, description="Safe to run again when a crash leaves its outcome unknown.")
    risk: Literal["low", "high"] = Field(
        "low", description="low: runs automatically; high: runs only once approved (`approvals`), and never on expiry."
    )
    approvals: RiskApproval | None = Field(
        None, description="For `risk: high`: how many people approve, within how long (default: one, 30m)."
    )

    @model_validator(mode="after")
    def _checks(self) -> Step:
        if self.approvals is not None and self.risk != "high":
            raise ValueError(
                f"step {self.id!r}: `approvals` applies to `risk: high` steps; add `risk: high` or drop it"
            )
        if self.risk == "high" and self.changes_nothing:
            raise ValueError(f"step {self.id!r}: a {self.action} step changes nothing, so it cannot be `risk: high`")
        return self

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Step:
        """On `Step` itself: the step of whichever kind `obj` names (schemas/steps/__init__.py, `AnyStep`);
        on a kind, that kind. Raises pydantic's ValidationError with the same messages a runbook file gets."""
        if cls is Step:
            from schemas.steps import STEP

            return STEP.validate_python(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    @property
    def gate(self) -> RiskApproval | None:
        """The approval a high-risk step waits for before it runs (None: a low-risk step runs at once)."""
        return (self.approvals or RiskApproval()) if self.risk == "high" else None

    @property
    def rerunnable(self) -> bool:
        """Whether running it again after a crash is harmless: declared so, or an action that changes nothing."""
        return self.idempotent or self.parks
