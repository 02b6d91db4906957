"""Runbooks: remediation written as YAML by their authors, and the records of running them.

A runbook names the incident events that trigger it (`on`), which incidents it applies to (`match`), values
rendered once from the incident (`params`) and ordered `steps`. Each step holds exactly one action. Every
string an author writes may be a sandboxed Jinja2 template, except a URL's scheme, host and port: the
host is fixed by the runbook, never by alert labels.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

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

STEP_ID = r"^[a-z][a-z0-9_]{0,62}$"
NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"
MAX_STEPS = 50


class Trigger(StrEnum):
    opened = "opened"
    escalated = "escalated"
    severity_changed = "severity_changed"
    resolved = "resolved"


class OnFailure(StrEnum):
    stop = "stop"
    continue_ = "continue"
    page = "page"


class Match(_Spec):
    """Which incidents a runbook applies to: all given conditions must hold."""

    matchers: list[str] = Field(default_factory=list, max_length=32,
                                description='Alertmanager-style matchers on the incident\'s labels, e.g. alertname="DiskFull".')
    severity: list[str] = Field(default_factory=list, description="Any of these severities (empty: any).")
    service: list[str] = Field(default_factory=list, description="Any of these services (empty: any).")
    team: list[str] = Field(default_factory=list, description="Any of these owner teams, from the service catalog (empty: any).")

    @field_validator("matchers")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        from schemas.matchers import normalize_matchers

        return normalize_matchers(value)


class Param(_Spec):
    """A param with a pattern the rendered value must match: the guard for values that reach commands or URLs."""

    value: str = Field(max_length=4000)
    pattern: str | None = Field(None, description="Regular expression (RE2, Go syntax, as Alertmanager's) the whole "
                                                  "rendered value must match.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        from schemas.regex import compile_anchored

        if value is not None:
            compile_anchored(value)  # RegexError (a ValueError) names RE2's reason; pydantic names the field
        return value


class HttpAction(_Spec):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str | SecretRef = Field(description="Template for path and query only; scheme, host and port are literal.")
    headers: dict[str, str | SecretRef] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json", description="Body sent as JSON; strings in it are templates.")
    expect_status: list[int] = Field(default_factory=list, description="Statuses that count as success (empty: any 2xx).")

    @field_validator("url")
    @classmethod
    def _fixed_host(cls, value: str | SecretRef) -> str | SecretRef:
        if isinstance(value, SecretRef):
            return value
        scheme, _, rest = value.partition("://")
        head = scheme + re.split(r"[/?#]", rest, maxsplit=1)[0]
        if "{{" in head or "{%" in head or "{#" in head:
            raise ValueError("the scheme, host and port of a URL must be written literally, not templated; "
                             "put labels in the path or query only")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL are not allowed; use a header with a secret")
        return value


class CommandSpec(_Spec):
    argv: list[str] = Field(min_length=1, max_length=128, description="Program and arguments; each item is one argument.")
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("argv")
    @classmethod
    def _program_literal(cls, value: list[str]) -> list[str]:
        if "{{" in value[0] or "{%" in value[0]:
            raise ValueError("argv[0], the program, must be written literally, not templated")
        return value


class NotifyAction(_Spec):
    channel: str = Field(min_length=1, max_length=64, description="A channel from the notifications file.")
    message: str = Field(min_length=1, max_length=8000, description="Template of the message text.")


class ApprovalAction(_Spec):
    prompt: str = Field(min_length=1, max_length=2000)
    timeout: Duration = Field(timedelta(minutes=30))
    default: Literal["approve", "reject"] = Field("reject", description="The decision when nobody answers in time.")


class WaitAction(_Spec):
    duration: Duration | None = Field(None, alias="for", description="Sleep this long.")
    until: Literal["resolved"] | None = Field(None, description="Wait until the incident resolves (bounded by the step timeout).")

    @model_validator(mode="after")
    def _one(self) -> "WaitAction":
        if (self.duration is None) == (self.until is None):
            raise ValueError("wait takes exactly one of `for: <duration>` or `until: resolved`")
        return self


class AnnotateAction(_Spec):
    text: str = Field(min_length=1, max_length=4000)


class ResolveAction(_Spec):
    comment: str = Field("resolved by runbook", max_length=2000)


class RiskApproval(_Spec):
    """Who must approve a `risk: high` step, and for how long the request stands."""

    required: int = Field(1, ge=1, le=2, description="Approvals needed, each from a different person (1 or 2).")
    expires: Duration = Field(timedelta(minutes=30), description="Unanswered this long, the request expires and the step "
                                                                 "does not run.")


class Retries(_Spec):
    attempts: int = Field(0, ge=0, le=10, description="Retries after the first attempt.")
    backoff: Duration = Field(timedelta(seconds=1), description="Wait before the first retry; doubles each time.")
    max_backoff: Duration = Field(timedelta(seconds=60))


ACTION_FIELDS = ("http", "command", "notify", "approval", "wait", "annotate", "resolve_incident")


class Step(_Spec):
    id: str = Field(pattern=STEP_ID, description="Unique in the runbook; later templates read steps.<id>.output.")
    http: HttpAction | None = None
    command: CommandSpec | None = None
    notify: NotifyAction | None = None
    approval: ApprovalAction | None = None
    wait: WaitAction | None = None
    annotate: AnnotateAction | None = None
    resolve_incident: ResolveAction | None = None
    when: str | None = Field(None, max_length=2000, description="Sandboxed expression; the step is skipped when false.")
    timeout: Duration = Field(timedelta(seconds=30))
    retries: Retries = Field(default_factory=Retries)
    on_failure: OnFailure = OnFailure.stop
    idempotent: bool = Field(False, description="Safe to run again when a crash leaves its outcome unknown.")
    risk: Literal["low", "high"] = Field("low", description="low: runs automatically; high: runs only once approved "
                                                           "(`approvals`), and never on expiry.")
    approvals: RiskApproval | None = Field(None, description="For `risk: high`: how many people approve, within how long "
                                                             "(default: one, 30m).")

    @model_validator(mode="after")
    def _one_action(self) -> "Step":
        given = [f for f in ACTION_FIELDS if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(f"a step has exactly one action of {', '.join(ACTION_FIELDS)}; "
                             f"step {self.id!r} has {', '.join(given) if given else 'none'}")
        if self.approvals is not None and self.risk != "high":
            raise ValueError(f"step {self.id!r}: `approvals` applies to `risk: high` steps; add `risk: high` or drop it")
        if self.risk == "high" and self.action in ("approval", "wait", "annotate"):
            raise ValueError(f"step {self.id!r}: a {self.action} step changes nothing, so it cannot be `risk: high`")
        return self

    @property
    def gate(self) -> RiskApproval | None:
        """The approval a high-risk step waits for before it runs (None: a low-risk step runs at once)."""
        return (self.approvals or RiskApproval()) if self.risk == "high" else None

    @property
    def action(self) -> str:
        return next(f for f in ACTION_FIELDS if getattr(self, f) is not None)

    @property
    def rerunnable(self) -> bool:
        """Whether running it again after a crash is harmless: declared so, or an action that changes nothing."""
        return self.idempotent or self.action in ("wait", "approval")


class Limit(_Spec):
    max: int = Field(ge=1, le=100_000, description="At most this many runs...")
    per: Duration = Field(description="...within this sliding window, e.g. 1h.")


class BlastRadius(_Spec):
    max_targets: int = Field(ge=1, le=100_000, description="At most this many distinct targets...")
    per: Duration = Field(description="...within this sliding window; a target already acted on within it is not new.")


class CircuitBreaker(_Spec):
    failures: int = Field(ge=1, le=1000, description="Open after this many failed runs in a row (blocked runs do not count).")
    cooldown: Duration = Field(timedelta(minutes=30), description="How long it stays open; then one trial run may go (half-open): "
                               "a success closes it, a failure opens it again.")


class Guardrails(_Spec):
    """Limits on how often a runbook acts. A run they block does not start: it fails with the reason, a human
    is paged with it, and `firebreak_guardrail_blocks_total` counts it."""

    target: str = Field("{{ incident.probable_root or (incident.services | first) or incident.id }}", min_length=1,
                        max_length=2000, description="Template naming what a run acts on (rendered with `params`), "
                        "for `per_target` and `blast_radius`; default: the incident's probable root service.")
    rate: Limit | None = Field(None, description="Runs of this runbook, over all targets.")
    per_target: Limit | None = Field(None, description="Runs against one target, e.g. at most 3 restarts of one deployment an hour.")
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
    page_channel: str | None = Field(None, description="Channel for `on_failure: page` and guardrail blocks (default: the settings' page channel).")
    guardrails: Guardrails | None = None
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _unique_steps(self) -> "Runbook":
        from schemas.matchers import repeated

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
