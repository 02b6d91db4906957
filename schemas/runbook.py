"""Runbooks: remediation written as YAML by their authors, and the records of running them.

A runbook names the incident events that trigger it (`on`), which incidents it applies to (`match`), values
rendered once from the incident (`params`) and ordered `steps`. Each step holds exactly one action. Every
string an author writes may be a sandboxed Jinja2 template, except a URL's scheme, host and port: the
host is fixed by the runbook, never by alert labels.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# SECRET_NAME, Duration and SecretRef lived here; other modules still import them from here (explicit re-exports)
from schemas.fields import SECRET_NAME as SECRET_NAME
from schemas.fields import Duration as Duration
from schemas.fields import SecretRef as SecretRef
from schemas.fields import Spec as _Spec
from schemas.matchers import normalize_matchers, repeated
from schemas.regex import compile_anchored

# The step kinds live in schemas/steps/ (one module each); re-exported here, where the one Step model was
from schemas.steps import ACTION_FIELDS as ACTION_FIELDS
from schemas.steps import STEP_ID as STEP_ID
from schemas.steps import AnnotateAction as AnnotateAction
from schemas.steps import AnyStep
from schemas.steps import ApprovalAction as ApprovalAction
from schemas.steps import CommandSpec as CommandSpec
from schemas.steps import HttpAction as HttpAction
from schemas.steps import NotifyAction as NotifyAction
from schemas.steps import OnFailure as OnFailure
from schemas.steps import ResolveAction as ResolveAction
from schemas.steps import Retries as Retries
from schemas.steps import RiskApproval as RiskApproval
from schemas.steps import Step as Step
from schemas.steps import WaitAction as WaitAction

NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"
MAX_STEPS = 50


class Trigger(StrEnum):
    opened = "opened"
    escalated = "escalated"
    severity_changed = "severity_changed"
    resolved = "resolved"


class Match(_Spec):
    """Which incidents a runbook applies to: all given conditions must hold."""

    matchers: list[str] = Field(
        default_factory=list,
        max_length=32,
        description='Alertmanager-style matchers on the incident\'s labels, e.g. alertname="DiskFull".',
    )
    severity: list[str] = Field(default_factory=list, description="Any of these severities (empty: any).")
    service: list[str] = Field(default_factory=list, description="Any of these services (empty: any).")
    team: list[str] = Field(
        default_factory=list, description="Any of these owner teams, from the service catalog (empty: any)."
    )

    @field_validator("matchers")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        return normalize_matchers(value)


class Param(_Spec):
    """A param with a pattern the rendered value must match: the guard for values that reach commands or URLs."""

    value: str = Field(max_length=4000)
    pattern: str | None = Field(
        None, description="Regular expression (RE2, Go syntax, as Alertmanager's) the whole rendered value must match."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compile_anchored(value)  # RegexError (a ValueError) names RE2's reason; pydantic names the field
        return value


class Limit(_Spec):
    max: int = Field(ge=1, le=100_000, description="At most this many runs...")
    per: Duration = Field(description="...within this sliding window, e.g. 1h.")


class BlastRadius(_Spec):
    max_targets: int = Field(ge=1, le=100_000, description="At most this many distinct targets...")
    per: Duration = Field(description="...within this sliding window; a target already acted on within it is not new.")


class CircuitBreaker(_Spec):
    failures: int = Field(
        ge=1, le=1000, description="Open after this many failed runs in a row (blocked runs do not count)."
    )
    cooldown: Duration = Field(
        timedelta(minutes=30),
        description="How long it stays open; then one trial run may go (half-open): "
        "a success closes it, a failure opens it again.",
    )


class Guardrails(_Spec):
    """Limits on how often a runbook acts. A run they block does not start: it fails with the reason, a human
    is paged with it, and `firebreak_guardrail_blocks_total` counts it."""

    target: str = Field(
        "{{ incident.probable_root or (incident.services | first) or incident.id }}",
        min_length=1,
        max_length=2000,
        description="Template naming what a run acts on (rendered with `params`), "
        "for `per_target` and `blast_radius`; default: the incident's probable root service.",
    )
    rate: Limit | None = Field(None, description="Runs of this runbook, over all targets.")
    per_target: Limit | None = Field(
        None, description="Runs against one target, e.g. at most 3 restarts of one deployment an hour."
    )
    blast_radius: BlastRadius | None = None
    circuit_breaker: CircuitBreaker | None = None


class Runbook(_Spec):
    name: str = Field(pattern=NAME)
    description: str = Field(min_length=1, max_length=2000)
    owner: str = Field(min_length=1, max_length=128, description="The team that owns it; paged on `on_failure: page`.")
    on: list[Trigger] = Field(min_length=1)
    match: Match = Field(default_factory=Match)
    params: dict[str, str | Param] = Field(default_factory=dict)
    concurrency: int = Field(4, ge=1, le=1000, description="Most runs of this runbook at once; more wait their turn.")
    page_channel: str | None = Field(
        None, description="Channel for `on_failure: page` and guardrail blocks (default: the settings' page channel)."
    )
    guardrails: Guardrails | None = None
    steps: list[AnyStep] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _unique_steps(self) -> Runbook:
        dupes = repeated([s.id for s in self.steps])
        if dupes:
            raise ValueError(f"step ids must be unique; {', '.join(dupes)} appear more than once")
        return self


class RunStatus(StrEnum):
    pending = "pending"  # created, not started (or waiting for a concurrency slot or a pause to end)
    running = "running"
    waiting = "waiting"  # parked on an approval or a wait step
    succeeded = "succeeded"
    failed = "failed"
    unknown = "unknown"  # a step's outcome was lost in a crash and it is not safe to re-run: a human decides

    @property
    def finished(self) -> bool:
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.unknown)


class StepStatus(StrEnum):
    started = "started"
    waiting = "waiting"
    succeeded = "succeeded"
    failed = "failed"
    skipped = "skipped"
    unknown = "unknown"

    @property
    def finished(self) -> bool:
        return self in (StepStatus.succeeded, StepStatus.failed, StepStatus.skipped, StepStatus.unknown)


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: StepStatus
    action: str = ""
    attempts: int = 0
    fence: int = 0
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    deadline: AwareDatetime | None = None
    output: Any = None
    error: str | None = None
    approved_by: list[str] = Field(default_factory=list)  # risk: high, once its approvals were given


class Run(BaseModel):
    """One run of one runbook for one incident, as Redis keeps it (the executor's coordination record)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    runbook: str
    incident_id: str
    trigger: Trigger
    trigger_event_id: str
    status: RunStatus = RunStatus.pending
    created_at: AwareDatetime
    updated_at: AwareDatetime
    params: dict[str, str] = Field(default_factory=dict)
    position: int = 0  # index of the next step to run
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    fence: int = 0
    error: str | None = None


class ResultKind(StrEnum):
    run_created = "run_created"
    run_started = "run_started"
    step_started = "step_started"
    step_waiting = "step_waiting"
    step_succeeded = "step_succeeded"
    step_failed = "step_failed"
    step_skipped = "step_skipped"
    step_unknown = "step_unknown"
    approval_decided = "approval_decided"
    approval_requested = "approval_requested"  # a risk: high step waits for people to approve it
    annotation = "annotation"
    run_blocked = "run_blocked"  # a guardrail kept it from starting; run_failed follows
    run_succeeded = "run_succeeded"
    run_failed = "run_failed"
    run_unknown = "run_unknown"


class ActionResult(BaseModel):
    """One fact about a run, on `action-results` (key: incident id). `result_id` is stable for deduplication."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    result_id: str
    kind: ResultKind
    run_id: str
    runbook: str
    incident_id: str
    step_id: str | None = None
    action: str | None = None
    attempt: int = 0
    at: AwareDatetime
    actor: str = "firebreak"
    output: Any = None
    error: str | None = None
    duration_ms: float | None = None
