"""What every step kind's code shares: the call it runs in, the outcome of a visit, the failure it raises,
and `StepKind`, the interface each kind implements (actions/steps/<kind>.py): run, describe and lint.

The runner (actions/runner.py) keeps the control flow (the timeout of each attempt, retries and backoff,
secrets scrubbed from what is recorded); a kind does one attempt of its action.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from schemas.errors import ActionError, Reason
from schemas.runbook import Param, StepStatus
from schemas.steps import Step

if TYPE_CHECKING:
    from actions.lint import LintEnv
    from actions.runner import Services


@dataclass
class Outcome:
    """A step's result after one visit of the runner: `status` succeeded, failed or waiting; `output` what later
    templates read as `steps.<id>.output`; `error` a one-line reason; `attempts` made; `wake_at` when a waiting
    step is looked at again; `reason` why a failed step failed (schemas/errors.py)."""

    status: StepStatus  # succeeded, failed or waiting
    output: Any = None
    error: str | None = None
    attempts: int = 1
    wake_at: datetime | None = None  # for waiting: when to look again
    reason: Reason | None = None  # for failed

    @property
    def refused(self) -> bool:
        """Whether an allow-list refused it (a host, an address, a program): `firebreak_actions_refused_total`."""
        return self.reason is Reason.refused_by_policy


class StepFailed(ActionError):
    """An attempt whose action ran and failed (an HTTP status, an exit code, a kill at the timeout): `output`
    is recorded, and `reason` (keyword) says why and whether the step's retries may try again."""

    def __init__(self, message: str, output: Any = None, *, reason: Reason) -> None:
        super().__init__(message, reason=reason)
        self.output = output


@dataclass(frozen=True)
class StepCall:
    """Where a step runs: the clients (`services`), the run and incident ids, who acts (`runbook:<name>`), when
    the step started and the time now (both UTC; a parked step compares them with its deadline)."""

    services: Services
    run_id: str
    incident_id: str
    actor: str
    started_at: datetime
    now: datetime


@dataclass(frozen=True)
class StepProblem:
    """One lint finding of a step: `loc` below the step (e.g. `("http", "url")`), the message, and its level
    (`error` or `warning`)."""

    loc: tuple[str | int, ...]
    message: str
    level: str = "error"


def seconds(duration: timedelta) -> str:
    """A duration as a dry run shows it: `900s`."""
    return f"{duration.total_seconds():g}s"


S = TypeVar("S", bound=Step)


class StepKind(ABC, Generic[S]):
    """One kind of runbook step (its action key, e.g. `http`): how it runs, how a dry run shows it, what lint
    checks. One instance serves every step of that kind; the step (a model in schemas/steps/) comes with each call."""

    step: ClassVar[type[Step]]
    """The step model of this kind (schemas/steps/<kind>.py). Its `parks` (True for waits and approvals) says
    how `run` is called: True, `run` decides the whole visit and returns an `Outcome`, possibly `waiting` (no
    timeout, no retries around it: the run parks until `wake_at`); False, `run` is one attempt, which the runner
    times and retries."""
    runs_in_test: ClassVar[bool] = True
    """Whether `firebreak runbook test` runs it outside a worker (False: shown and counted as succeeded)."""
    url_templates: ClassVar[tuple[tuple[str, ...], ...]] = ()
    """Locations (ends of paths below the step) whose strings are URL templates, which lint checks as URLs."""

    @abstractmethod
    async def run(self, step: S, ctx: dict[str, Any], call: StepCall) -> Any:
        """One attempt: returns the step's output (what `steps.<id>.output` reads), or, for a kind that `parks`,
        the `Outcome` of this visit. Raises an ActionError (StepFailed, RenderError, Refused, CommandRefused,
        SecretMissing, NotifyError: its `reason` decides a retry), TimeoutError, OSError or aiohttp errors; the
        runner turns them into a failed Outcome with its Reason."""

    @abstractmethod
    def describe(self, step: S, ctx: dict[str, Any]) -> dict[str, Any]:
        """The action as it would run, rendered with `ctx`, secrets shown as `<secret NAME>`: what a dry run
        prints under the action's key. Raises RenderError when a template does not render."""

    @abstractmethod
    def lint(self, step: S, env: LintEnv, params: dict[str, str | Param]) -> list[StepProblem]:
        """Problems found without running: unset secrets, hosts and programs off the allow-lists, channels the
        notifications file lacks, risky templates (as warnings). `params` are the runbook's declared params."""
