"""The grouping stage: one state entry per correlation key holds at most one open incident.

| id     | open incident? | alert event             | result                                        |
|--------|----------------|-------------------------|-----------------------------------------------|
| GRP-1  | no             | firing                  | `opened`, then `alert_added`                  |
| GRP-2  | yes            | firing, new or resolved | `alert_added`                                 |
| GRP-3  | yes            | firing, already firing  | nothing (idempotent)                          |
| GRP-4  | yes            | resolved, was firing    | `alert_resolved`; `resolved` if none fire now |
| GRP-5  | any            | resolved, not firing    | nothing (idempotent)                          |
| GRP-0  | position seen  | any                     | redelivery: re-emit what that record did      |

The stage is idempotent in content as well as by position: the same alert event applied twice (for
example re-emitted by a redelivered dedup record) changes nothing the second time.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas import AlertEvent, AlertStatus, IncidentEvent, IncidentEventKind


class OpenIncident(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    opened_at: AwareDatetime
    seq: int
    alerts: dict[str, AlertStatus]


class GroupState(BaseModel):
    """What the grouping stage remembers about one correlation key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    correlation_key: str
    position: int
    incident: OpenIncident | None = None
    last_emitted: list[IncidentEvent] = []


def incident_id(correlation_key: str, position: int, now: datetime) -> str:
    """Deterministic, so a redelivered opening yields the same id."""
    digest = hashlib.sha256(f"{correlation_key}|{position}|{now.isoformat()}".encode()).hexdigest()
    return f"inc-{digest[:12]}"


def group(entry: GroupState | None, event: AlertEvent, position: int, now: datetime) -> tuple[GroupState, list[IncidentEvent]]:
    """Apply one alert event at `position` (its offset in the correlation key's partition) at time `now`."""
    if entry is not None and position <= entry.position:
        return entry, (entry.last_emitted if position == entry.position else [])

    incident = entry.incident if entry is not None else None
    fp = event.alert.fingerprint
    kinds: list[IncidentEventKind] = []

    if event.status is AlertStatus.firing:
        if incident is None:
            incident = OpenIncident(
                id=incident_id(event.correlation_key, position, now), opened_at=now, seq=0, alerts={}
            )
            kinds.append(IncidentEventKind.opened)
        if incident.alerts.get(fp) is not AlertStatus.firing:
            kinds.append(IncidentEventKind.alert_added)
            incident = incident.model_copy(update={"alerts": {**incident.alerts, fp: AlertStatus.firing}})
    elif incident is not None and incident.alerts.get(fp) is AlertStatus.firing:
        incident = incident.model_copy(update={"alerts": {**incident.alerts, fp: AlertStatus.resolved}})
        kinds.append(IncidentEventKind.alert_resolved)
        if all(status is AlertStatus.resolved for status in incident.alerts.values()):
            kinds.append(IncidentEventKind.resolved)

    emitted: list[IncidentEvent] = []
    if incident is not None:
        for kind in kinds:
            seq = incident.seq + len(emitted) + 1
            emitted.append(
                IncidentEvent(
                    event_id=f"{incident.id}:{seq}",
                    kind=kind,
                    incident_id=incident.id,
                    correlation_key=event.correlation_key,
                    group_labels=event.group_labels,
                    seq=seq,
                    at=now,
                    alert=event.alert,
                )
            )
        incident = incident.model_copy(update={"seq": incident.seq + len(emitted)})
        if IncidentEventKind.resolved in kinds:
            incident = None
    state = GroupState(correlation_key=event.correlation_key, position=position, incident=incident, last_emitted=emitted)
    return state, emitted
