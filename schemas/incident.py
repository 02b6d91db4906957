"""Incidents and the records that build them.

`alert-events` carries the grouping stage's inputs, keyed by correlation key: `AlertEvent` (the dedup
stage's output), `IncidentCommand` (ack, resolve, merge or split from a person) and `Tick` (time passing, per
partition).
`incident-events` carries `IncidentEvent`s keyed by incident id: the source of truth from which the
`Incident` read model in Redis is rebuilt.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field

from schemas.alert import Alert, AlertStatus


def _unset(value: object) -> bool:
    """A default that need not be written out: None, False, or empty."""
    return value is None or value is False or value == "" or value == {} or value == []


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertEvent(_Record):
    """An alert that changed state (first firing, re-firing, or resolving), with the policy that groups it."""

    type: Literal["alert"] = "alert"
    status: AlertStatus
    policy: str = "default"
    correlation_key: str
    group_labels: dict[str, str]
    alert: Alert
    at: AwareDatetime
    source_position: int = -1  # offset of the alerts record that caused it: orders events of one fingerprint
    flapping_until: AwareDatetime | None = None  # set while the alert flaps: hold notifications until then
    suppressed_by: str | None = None  # "silence:<id>" or "inhibit:<rule>": recorded, kept out of incidents
    # The fields below are left out of the JSON while they hold their default (most records): every alert
    # event is written to Kafka and kept in table entries, and their bytes cost throughput (BENCHMARKS.md).
    refresh: bool = Field(False, exclude_if=_unset)  # still firing, sent again (quiet_resolve): renews when last seen
    updated: bool = Field(False, exclude_if=_unset)  # a refresh whose annotations or generatorURL changed (DUP-9)
    rule: str = ""  # the dedup rule that emitted it (correlation/dedup.py), for the decision log
    suppressed_detail: dict[str, str] = Field(
        default_factory=dict, exclude_if=_unset
    )  # who silenced it, or the inhibitor
    page_hold_seconds: float | None = Field(
        None, exclude_if=_unset
    )  # transient pause: usually resolves within this long
    page_hold_reason: str = Field("", exclude_if=_unset)  # ... and the figures that say so


class CommandAction(StrEnum):
    acknowledge = "acknowledge"
    resolve = "resolve"
    merge = "merge"  # `incident_id` joins `into`, an open incident of the same correlation key (GRP-30)
    # `alerts` leave `incident_id` for a new incident (GRP-31). The member hides str.split on every member (mypy's
    # [assignment]); the name is the command's word on the wire and in the API, and no code splits an action.
    split = "split"  # type: ignore[assignment]


MAX_MOVED_ALERTS = 1000  # alerts one merge or split moves at most (the command carries their snapshot)
Fingerprint = Annotated[str, Field(min_length=1, max_length=128)]


class IncidentCommand(_Record):
    """A person acknowledging, resolving, merging or splitting an incident (API or CLI).

    Merge and split move alerts between incidents. The grouping stage keeps each alert's status, not its labels,
    so the command brings `snapshot`: the source incident's alerts as the read model showed them (labels are
    fixed by the fingerprint). From it the stage titles a split-off incident, finds its severity and services,
    and puts each moved alert on the events, so the read model of the incident that takes them lists them.
    Statuses come from the stage's own state, never from the snapshot. The fields below are left out of the
    JSON while they hold their default (acknowledge, resolve).
    """

    type: Literal["command"] = "command"
    action: CommandAction
    incident_id: str
    correlation_key: str
    actor: str = Field(min_length=1, max_length=128)
    comment: str = Field("", max_length=2000)
    at: AwareDatetime
    into: str | None = Field(None, min_length=1, max_length=128, exclude_if=_unset)  # merge: the incident that stays
    alerts: list[Fingerprint] = Field(
        default_factory=list, max_length=MAX_MOVED_ALERTS, exclude_if=_unset
    )  # split: chosen
    snapshot: list[Alert] = Field(default_factory=list, max_length=MAX_MOVED_ALERTS, exclude_if=_unset)


class Tick(_Record):
    """Time passing for one partition of `alert-events`: opens incidents whose group_wait ended, and so on."""

    type: Literal["tick"] = "tick"
    at: AwareDatetime


GroupInput = Annotated[AlertEvent | IncidentCommand | Tick, Field(discriminator="type")]


class IncidentEventKind(StrEnum):
    opened = "opened"
    alert_added = "alert_added"
    alert_resolved = "alert_resolved"
    severity_changed = "severity_changed"
    acknowledged = "acknowledged"
    resolved = "resolved"
    reopened = "reopened"
    root_changed = "root_changed"
    flapping_started = "flapping_started"
    flapping_ended = "flapping_ended"
    problem_detected = "problem_detected"
    change_suspected = "change_suspected"
    page_hold_ended = "page_hold_ended"  # transient pause cut short: an alert that does not resolve by itself joined
    alert_updated = "alert_updated"  # a firing alert's annotations or generatorURL changed (GRP-27): shown, never paged
    alerts_truncated = "alerts_truncated"  # Alertmanager left alerts of the group out of its webhook (GRP-26)
    # A person's merge (GRP-30): `merged` ends the source (related: [target]); `merged_in` on the target says
    # what came in (related: [source, moved fingerprints...]), before its alerts' `alert_added` events.
    merged = "merged"
    merged_in = "merged_in"
    # A person's split (GRP-31) on the source: related: [the new incident, moved fingerprints...]. The new
    # incident opens with `opened` (rule GRP-31, related: [source]).
    alerts_split = "alerts_split"


class IncidentStatus(StrEnum):
    triggered = "triggered"
    acknowledged = "acknowledged"
    resolved = "resolved"


SYSTEM_ACTOR = "firebreak"


class IncidentEvent(_Record):
    """One step in an incident's life. `seq` orders an incident's events; `event_id` is stable on redelivery.

    `rule` names the transition that produced it (see correlation/grouping.py), for the timeline.
    """

    event_id: str
    kind: IncidentEventKind
    incident_id: str
    correlation_key: str
    policy: str = "default"
    group_labels: dict[str, str]
    seq: int = Field(ge=1)
    at: AwareDatetime
    rule: str = ""
    actor: str = SYSTEM_ACTOR
    comment: str = ""
    title: str | None = None
    severity: str | None = None
    probable_root: str | None = None
    notify: bool = True  # false while the incident flaps: notifications hold until `flapping_ended`
    problem_id: str | None = None
    # Incident ids (problem) or change ids (suspects); for a merge or split the other incident first, then the
    # fingerprints that moved (`merged_in`, `alerts_split`): the record of who regrouped what.
    related: list[str] = Field(default_factory=list)
    alert: Alert | None = None
    page_held_until: AwareDatetime | None = Field(
        None, exclude_if=_unset
    )  # `opened`: the transient pause holds its page
    page_hold_reason: str | None = Field(None, exclude_if=_unset)
    # `alert_added` by a join (GRP-5): the evidence that decided it, name -> value (correlation/grouping.py `_link`)
    evidence: dict[str, str] = Field(default_factory=dict, exclude_if=_unset)


class IncidentAlert(_Record):
    """An alert as the incident sees it."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    generator_url: str = Field("", exclude_if=_unset)


class TimelineEntry(_Record):
    seq: int
    at: AwareDatetime
    kind: IncidentEventKind
    rule: str = ""
    actor: str = SYSTEM_ACTOR
    fingerprint: str | None = None
    detail: str = ""


class Incident(_Record):
    """The read model of one incident, as the API and CLI show it."""

    # The computed counts are written out with the model; reading them back ignores them.
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    correlation_key: str
    policy: str = "default"
    group_labels: dict[str, str]
    status: IncidentStatus
    title: str
    severity: str | None = None
    probable_root: str | None = None
    flapping: bool = False
    page_held_until: AwareDatetime | None = Field(
        None, description="Transient pause: no page before this; none at all if it resolves first."
    )
    page_hold_reason: str | None = Field(None, description="The figures the transient pause used.")
    problem_id: str | None = None
    problem_incidents: list[str] = Field(default_factory=list)  # the recurrences the problem links
    suspect_changes: list[str] = Field(default_factory=list)
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    acknowledged_at: AwareDatetime | None = None
    acknowledged_by: str | None = None
    resolved_at: AwareDatetime | None = None
    resolved_by: str | None = None
    merged_into: str | None = Field(None, description="Merged by a person into this incident (status resolved).")
    merged_from: list[str] = Field(default_factory=list, description="Incidents merged into this one.")
    split_from: str | None = Field(None, description="Opened by a person's split of this incident.")
    split_into: list[str] = Field(default_factory=list, description="Incidents split off this one.")
    seq: int = Field(ge=1, description="the seq of the last incident event applied")
    alerts: dict[str, IncidentAlert] = Field(default_factory=dict)
    timeline: list[TimelineEntry] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]  # mypy takes no decorator above @property; pydantic documents this
    @property
    def firing_count(self) -> int:
        return sum(1 for a in self.alerts.values() if a.status is AlertStatus.firing)

    @computed_field  # type: ignore[prop-decorator]  # mypy takes no decorator above @property; pydantic documents this
    @property
    def alert_count(self) -> int:
        return len(self.alerts)

    @property
    def is_open(self) -> bool:
        return self.status is not IncidentStatus.resolved
