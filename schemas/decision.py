"""The decision log: why the engine did (or did not) open an incident or page someone for an alert.

Each stage that decides something about an alert writes a `DecisionBatch` to the `decisions` topic (one
record per input record, so the log costs one send, not one per decision). The worker folds them into Redis
per fingerprint and per incident, with bounded retention; `firebreak explain` and
`GET /api/v1/alerts/{fingerprint}/explain` read them back as a timeline.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class DecisionKind(StrEnum):
    # dedup stage: what the alert itself was
    fired = "fired"  # new, or firing again after resolving
    deduplicated = "deduplicated"  # a repeat of what is known: nothing new (logged at repeats 1, 2, 4, 8, ...)
    stale = "stale"  # a late copy of an old firing
    resolved = "resolved"
    silenced = "silenced"
    inhibited = "inhibited"
    released = "released"  # no longer silenced or inhibited: it may join an incident now
    flapping = "flapping"  # changes state too often: notifications hold
    # grouping stage: what became of it
    held = "held"  # collected by an incident that has not opened (group_wait, a minimum)
    joined = "joined"  # in an incident (opened with it, joined, or reopened it)
    dropped = "dropped"  # its pending incident never opened: nobody was paged
    kept_out = "kept_out"  # suppressed: recorded, kept out of incidents
    alert_resolved = "alert_resolved"  # resolved inside its incident
    quiet_resolved = "quiet_resolved"  # resolved by Firebreak after its source went quiet
    alerts_truncated = "alerts_truncated"  # Alertmanager left alerts of the group out of its webhook (truncatedAlerts)
    # the incident and the people
    incident_opened = "incident_opened"
    incident_resolved = "incident_resolved"
    incident_acknowledged = "incident_acknowledged"
    incident_merged = "incident_merged"  # a person merged it into another (detail `into`), or another into it (`from`)
    alerts_split = "alerts_split"  # a person split alerts off it into a new incident (detail `into`, `alerts`)
    command_refused = "command_refused"  # a person's merge or split no longer fitted when its turn came: why
    escalation_started = "escalation_started"  # which route chose which escalation policy
    page_held = "page_held"  # transient pause or flapping: the page waits
    page_hold_ended = "page_hold_ended"  # the transient pause was cut short: this alert does not resolve by itself
    not_paged = "not_paged"  # no route, suppressed, or resolved within the pause
    paged = "paged"  # a page or notice went out (or failed): level, channel, result


class Decision(BaseModel):
    """One decision. `fingerprint` and/or `incident_id` say whose story it belongs to."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    at: AwareDatetime
    kind: DecisionKind
    fingerprint: str | None = None
    incident_id: str | None = None
    policy: str | None = None
    rule: str = Field("", description="The transition's rule id (DUP-n, GRP-n; see correlation/) or the deciding part.")
    reason: str = Field("", description="Why, in words, with the figures used.")
    labels: dict[str, str] | None = Field(
        None, description="On the first decision about an alert: what its fingerprint was computed from."
    )
    detail: dict[str, str] = Field(
        default_factory=dict, description="Machine-readable particulars: silence, level, channel, result."
    )
    position: int = Field(
        -1, description="Offset of the alert record it follows from (-1: none); orders the decisions of one instant."
    )


class DecisionBatch(BaseModel):
    """What one input record decided: the value of a `decisions` record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decisions: list[Decision]
