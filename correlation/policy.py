"""Correlation policies: which alerts group together, how long to wait, how big an incident may grow.

Policies are tried in order; the first whose matchers all match an alert's labels decides its grouping.
A final `default` policy (group by the `group_by` setting) catches everything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from correlation.templates import compile_template
from schemas.durations import parse_duration
from schemas.matchers import Matcher, matches_all, parse_matcher_list, repeated

DEFAULT_SEVERITIES = ("critical", "error", "warning", "info")
# A topology policy's session gap unless it sets one: a cascade reaches its next service within a minute or
# two of the last (bench/worlds.py: chosen on its tune seeds, reported on others; BENCHMARKS.md).
DEFAULT_SESSION_GAP = timedelta(minutes=2)
# Labels whose values separate failure domains: a topology policy never joins alerts whose values differ.
DEFAULT_FAILURE_DOMAIN = ("cluster", "region")

Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(lambda d: f"{int(d.total_seconds())}s")
]


def _parse_matchers(value: object) -> object:
    """Before validation: a matcher text, or a list or tuple of texts and matchers, read as matchers; anything else
    is left to the field's own validation."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)):
        return parse_matcher_list(value)
    return value


Matchers = Annotated[
    tuple[Matcher, ...], BeforeValidator(_parse_matchers), PlainSerializer(lambda ms: [str(m) for m in ms])
]


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    match: Matchers = ()
    group_by: tuple[str, ...] = ()
    group_wait: Duration = timedelta(0)
    group_window: Duration | None = None
    max_alerts: int = Field(1000, ge=1, le=100_000)
    min_alerts: int = Field(1, ge=1, le=10_000)  # firing alerts needed before an incident opens
    min_services: int = Field(1, ge=1, le=1000)  # distinct services among them
    min_within: Duration = timedelta(minutes=15)  # how long, from its first alert, a group may take to reach them
    resolve_timeout: Duration = timedelta(0)
    reopen_window: Duration = timedelta(0)
    # For sources that never send resolved: an alert not sent again for this long is resolved (GRP-21).
    quiet_resolve: Duration | None = None
    transient_pause: TransientPause | None = None
    title: str | None = Field(None, max_length=1000)
    topology: bool = False  # alerts of services on one dependency chain join one incident
    # Time as evidence (a session): with topology, an alert joins only through a member whose last new alert came
    # less than this long ago (per dependency hop between them, up to two); without, the key's incident takes a
    # new alert only while its last new alert is that recent. A failure spreads within minutes; an alert twenty
    # minutes later is another failure. Topology policies default to DEFAULT_SESSION_GAP; `null` turns it off.
    session_gap: Duration | None = None
    # Topology: alerts whose values of these labels differ are never joined (an alert without one is not
    # scoped by it: shared infrastructure).
    failure_domain: Annotated[
        tuple[str, ...], BeforeValidator(lambda v: [name.strip() for name in v.split(",")] if isinstance(v, str) else v)
    ] = DEFAULT_FAILURE_DOMAIN
    # Learn from history: signatures (alertname and service) that keep firing together may join beyond the
    # catalog; a pair people split apart never joins on that evidence (correlation/evidence.py).
    learn: bool = False

    @field_validator("title")
    @classmethod
    def _title_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compile_template(value)
        return value

    @field_validator("group_by", "failure_domain")
    @classmethod
    def _distinct(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"{info.field_name} lists a label twice; list each once")
        if any(not name for name in value):
            raise ValueError(f"{info.field_name} lists an empty label name; remove it")
        return value

    @model_validator(mode="after")
    def _grouping_given(self) -> Policy:
        if not self.group_by and not self.topology:
            raise ValueError("a policy needs group_by labels, topology: true, or both")
        if self.topology and "session_gap" not in self.model_fields_set:
            object.__setattr__(self, "session_gap", DEFAULT_SESSION_GAP)
        if "failure_domain" in self.model_fields_set and not self.topology:
            raise ValueError("failure_domain scopes topology joins; set topology: true, or put the labels in group_by")
        if self.learn and not self.topology:
            raise ValueError("learn needs topology: true (it adds links to the catalog's; a group_by key has none)")
        if self.session_gap is not None and self.session_gap <= timedelta(0):
            raise ValueError("session_gap must be positive (e.g. 5m), or null for none")
        if self.quiet_resolve is not None and self.quiet_resolve < timedelta(seconds=10):
            raise ValueError(
                "quiet_resolve must be at least 10s, and several times the interval at which the "
                "source repeats a firing alert (Alertmanager: every minute or so, so 5m or more)"
            )
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        return matches_all(self.match, labels)

    @property
    def holds_back(self) -> bool:
        """Whether a new incident waits before opening: for group_wait or for a minimum of alerts or services."""
        return self.group_wait.total_seconds() > 0 or self.min_alerts > 1 or self.min_services > 1


class TransientPause(BaseModel):
    """Hold the page of an alert that usually resolves by itself: if at least `share` of its last firings
    (and at least `min_history` of them) resolved within `within`, a new firing holds its incident's page for
    `within`, and pages only if the incident still fires then. Never for `except_severities`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    within: Duration = timedelta(minutes=5)
    share: float = Field(0.8, gt=0, le=1)
    min_history: int = Field(3, ge=1, le=10)
    except_severities: tuple[str, ...] = ("critical",)


HISTORY = 10  # how many recent firings of a fingerprint the transient pause learns from


class FlappingRule(BaseModel):
    """An alert that changes state more than `transitions` times within `window` is flapping; its incident is
    not notified again until the alert has been stable for `hold_down`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transitions: int = Field(4, ge=2, le=1000)
    window: Duration = timedelta(minutes=10)
    hold_down: Duration = timedelta(minutes=15)


class ProblemRule(BaseModel):
    """Incidents of one correlation key that recur `recurrences` times within `within` make a problem record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recurrences: int = Field(3, ge=2, le=1000)
    within: Duration = timedelta(days=7)


class InhibitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    source_matchers: Matchers = Field(min_length=1)
    target_matchers: Matchers = Field(min_length=1)
    equal: tuple[str, ...] = ()

    def _key(self, labels: Mapping[str, str]) -> str:
        return f"{self.name}:{json.dumps([labels.get(n, '') for n in self.equal], ensure_ascii=False)}"

    def source_key(self, labels: Mapping[str, str]) -> str | None:
        """Where a firing alert registers as a source of this rule (None: it is not one)."""
        return self._key(labels) if matches_all(self.source_matchers, labels) else None

    def target_key(self, labels: Mapping[str, str]) -> str | None:
        """Where to look for sources that inhibit this alert (None: the rule cannot inhibit it)."""
        return self._key(labels) if matches_all(self.target_matchers, labels) else None


class PolicySet(BaseModel):
    """The correlation file: ordered policies, the severity ranking, flapping and problem thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policies: tuple[Policy, ...] = ()
    severities: tuple[str, ...] = DEFAULT_SEVERITIES
    severity_label: str = "severity"
    flapping: FlappingRule = FlappingRule()
    problems: ProblemRule = ProblemRule()
    inhibit_rules: tuple[InhibitRule, ...] = ()
    change_window: Duration = timedelta(hours=1)  # a change this long before an incident opens is a suspect

    @model_validator(mode="after")
    def _unique_names(self) -> PolicySet:
        dupes = repeated([p.name for p in self.policies])
        if dupes:
            raise ValueError(f"policy names must be unique; {', '.join(dupes)} appear more than once")
        return self

    def with_default(self, group_by: tuple[str, ...]) -> PolicySet:
        """These policies plus a catch-all `default` (unless one is named so already)."""
        if any(p.name == "default" for p in self.policies):
            return self
        return self.model_copy(update={"policies": (*self.policies, Policy(name="default", group_by=group_by))})

    @cached_property
    def quiet_resolving(self) -> bool:
        """Whether any policy resolves alerts by silence of their source (dedup then watches repeats)."""
        return any(p.quiet_resolve is not None for p in self.policies)

    def select(self, labels: dict[str, str]) -> Policy:
        for policy in self.policies:
            if policy.matches(labels):
                return policy
        raise LookupError("no policy matches and there is no default policy")

    def get(self, name: str) -> Policy:
        """The policy by name; the last (catch-all) one if the name is gone after a configuration change."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        return self.policies[-1]

    def rank(self, severity: str | None) -> int:
        """Higher is more severe; unknown or missing severities rank lowest."""
        if severity is None or severity not in self.severities:
            return 0
        return len(self.severities) - self.severities.index(severity)


def default_policies(group_by: tuple[str, ...]) -> PolicySet:
    return PolicySet().with_default(group_by)
