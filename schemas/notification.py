"""The notifications file: channels, people, on-call schedules, escalation policies and routes; and the
record of each delivery.

```yaml
channels:   {name: {type: webhook|slack|email|pagerduty|opsgenie, ...}}
users:      {alice: {name: Alice, contacts: [{channel: email, address: alice@example.com}]}}
schedules:  {platform-primary: {time_zone: Europe/Berlin, rotation: {...}, overrides: [...]}}
escalation_policies: {platform: {levels: [{targets: [...], delay: 5m}], repeat: 1}}
routes:     [{matchers: [...], severity: [...], service: [...], team: [...], policy: platform}]
default_policy: platform
```
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

# The channel kinds live in schemas/channels/ (one module each); re-exported here, where they were defined
from schemas.channels import Channel as Channel
from schemas.channels import EmailChannel as EmailChannel
from schemas.channels import OpsgenieChannel as OpsgenieChannel
from schemas.channels import PagerDutyChannel as PagerDutyChannel
from schemas.channels import SlackChannel as SlackChannel
from schemas.channels import Templates as Templates
from schemas.channels import WebhookChannel as WebhookChannel
from schemas.errors import Reason
from schemas.fields import Duration
from schemas.matchers import normalize_matchers

NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Spec):
    channel: str = Field(pattern=NAME)
    address: str = Field(
        "", max_length=320, description="Email address, or the user's id on the channel (e.g. a Slack member id)."
    )


class User(_Spec):
    name: str = Field("", max_length=200)
    contacts: list[Contact] = Field(min_length=1, max_length=16)


class Weekday(StrEnum):
    monday = "monday"
    tuesday = "tuesday"
    wednesday = "wednesday"
    thursday = "thursday"
    friday = "friday"
    saturday = "saturday"
    sunday = "sunday"


class Rotation(_Spec):
    """Members take turns; a turn starts at `handoff` local time (every day, or on `handoff_day` each week)."""

    type: Literal["daily", "weekly"]
    members: list[str] = Field(min_length=1, max_length=100)
    start: date = Field(description="A date on which the first member's turn starts (at the handoff time).")
    handoff: time = Field(time(9, 0), description="Local wall-clock time of the handoff, in the schedule's time zone.")
    handoff_day: Weekday = Field(Weekday.monday, description="Weekly rotations: the day of the handoff.")


class Override(_Spec):
    """Someone else covers a date range (e.g. a swap or holiday cover)."""

    user: str
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Override:
        if self.end <= self.start:
            raise ValueError("an override's end must be after its start")
        return self


class Schedule(_Spec):
    time_zone: str = Field(
        "UTC", description="IANA time zone, e.g. Europe/Berlin: handoffs follow its daylight saving."
    )
    rotation: Rotation
    overrides: list[Override] = Field(default_factory=list)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from exc
        return value


class Target(_Spec):
    """Exactly one of: a user, a schedule (whoever is on call), a channel."""

    user: str | None = None
    schedule: str | None = None
    channel: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Target:
        if sum(v is not None for v in (self.user, self.schedule, self.channel)) != 1:
            raise ValueError("a target is exactly one of user, schedule or channel")
        return self


class Level(_Spec):
    targets: list[Target] = Field(min_length=1, max_length=32)
    delay: Duration = Field(
        timedelta(minutes=5), description="How long after paging this level the next is paged, unless acknowledged."
    )


class EscalationPolicy(_Spec):
    levels: list[Level] = Field(min_length=1, max_length=16)
    repeat: int = Field(0, ge=0, le=10, description="Times to start again from level 1 after the last level.")


class Route(_Spec):
    """Incidents matching every condition go to `policy`; the first matching route wins."""

    matchers: list[str] = Field(default_factory=list)
    severity: list[str] = Field(default_factory=list)
    service: list[str] = Field(default_factory=list)
    team: list[str] = Field(default_factory=list)
    policy: str | None = Field(None, description="The escalation policy; none: the incident pages nobody.")

    @field_validator("matchers")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        return normalize_matchers(value)


class NotificationsFile(_Spec):
    channels: dict[str, Channel] = Field(default_factory=dict)
    users: dict[str, User] = Field(default_factory=dict)
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    escalation_policies: dict[str, EscalationPolicy] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    default_policy: str | None = Field(
        None,
        description="Policy for incidents no route matches. The service catalog's team is tried first: "
        "a policy named like the owner team of the incident's services.",
    )

    @model_validator(mode="after")
    def _references(self) -> NotificationsFile:
        problems = []
        for kind, names in (
            ("channel", self.channels),
            ("user", self.users),
            ("schedule", self.schedules),
            ("escalation policy", self.escalation_policies),
        ):
            bad = [n for n in names if not re.fullmatch(NAME, n)]
            if bad:
                problems.append(f"{kind} names {', '.join(bad)}: use lower-case letters, digits, '.', '_' or '-'")
        for uname, user in self.users.items():
            problems += [
                f"user {uname}: channel {c.channel!r} is not defined"
                for c in user.contacts
                if c.channel not in self.channels
            ]
        for sname, schedule in self.schedules.items():
            people = [*schedule.rotation.members, *(o.user for o in schedule.overrides)]
            problems += [f"schedule {sname}: user {u!r} is not defined" for u in people if u not in self.users]
        for pname, policy in self.escalation_policies.items():
            for i, level in enumerate(policy.levels, start=1):
                for t in level.targets:
                    if t.user and t.user not in self.users:
                        problems.append(f"policy {pname} level {i}: user {t.user!r} is not defined")
                    if t.schedule and t.schedule not in self.schedules:
                        problems.append(f"policy {pname} level {i}: schedule {t.schedule!r} is not defined")
                    if t.channel and t.channel not in self.channels:
                        problems.append(f"policy {pname} level {i}: channel {t.channel!r} is not defined")
        policies = [r.policy for r in self.routes if r.policy] + ([self.default_policy] if self.default_policy else [])
        problems += [f"escalation policy {p!r} is not defined" for p in policies if p not in self.escalation_policies]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class DeliveryKind(StrEnum):
    page = "page"
    update = "update"
    acknowledge = "acknowledge"
    resolve = "resolve"
    message = "message"  # a runbook's notify step


class DeliveryStatus(StrEnum):
    delivered = "delivered"
    dead_lettered = "dead_lettered"
    skipped = "skipped"  # already delivered (a redelivery), or nothing to send on this channel


class Delivery(BaseModel):
    """One notification to one channel (and address), on the `notifications` topic (key: incident id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery_id: str = Field(description="The dedup key: stable for a retried or redelivered notification.")
    kind: DeliveryKind
    incident_id: str
    channel: str
    channel_type: str
    address: str = ""
    user: str | None = None
    level: int | None = None
    status: DeliveryStatus
    attempts: int = 0
    error: str | None = None
    reason: Reason | None = Field(
        None,
        exclude_if=lambda reason: reason is None,
        description="Why a dead-lettered delivery failed (schemas/errors.py); absent when delivered.",
    )
    at: AwareDatetime
    latency_ms: float | None = Field(None, description="From the incident event that caused it to delivery.")
