"""People merging and splitting incidents through the API (grouping rules GRP-30 and GRP-31).

- `POST /api/v1/incidents/{incident_id}/merge`  `{"into": "<incident id>", "actor": ..., "comment": ...}`: the
  incident ends, its alerts join `into`;
- `POST /api/v1/incidents/{incident_id}/split`  `{"alerts": ["<fingerprint>", ...], "actor": ..., "comment": ...}`:
  those alerts leave the incident for a new one, which pages on its own.

Both are checked here against the read model, each refusal a 4xx naming the field and the fix (`merge_refusal`,
`split_refusal`: pure, over the incidents as the read model holds them). An accepted command (202) is on Kafka,
keyed by the incident's correlation key like an acknowledgement; the grouping stage applies it in order with the
key's alerts, and if the incidents changed meanwhile so that it no longer fits, changes nothing and says why in
the decision log (`firebreak explain --incident`). The split-off incident's id is known only then: it is on the
source's timeline (`alerts_split`) and in its `split_into`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from correlation.projection import snapshot
from ingest.audit import AUDIT_DETAIL
from ingest.errors import IngestError, Problem
from schemas import AlertStatus, CommandAction, Incident, IncidentCommand
from schemas.alert import PlainName
from schemas.batch import MAX_RECORD_BYTES
from schemas.incident import MAX_MOVED_ALERTS, Fingerprint

FindIncident = Callable[[web.Request], Awaitable[Incident]]
GetIncident = Callable[[str], Awaitable[Incident | None]]
Send = Callable[[IncidentCommand], Awaitable[None]]


class MergeBody(BaseModel):
    """Body of POST /api/v1/incidents/{id}/merge."""

    model_config = ConfigDict(extra="forbid")

    into: str = Field(
        min_length=1, max_length=128, description="the open incident that stays and takes this one's alerts"
    )
    actor: PlainName = Field(description="who acts: a user name or email")
    comment: str = Field("", max_length=2000)


class SplitBody(BaseModel):
    """Body of POST /api/v1/incidents/{id}/split."""

    model_config = ConfigDict(extra="forbid")

    alerts: list[Fingerprint] = Field(
        max_length=MAX_MOVED_ALERTS,
        json_schema_extra={"minItems": 1},
        description="fingerprints of the incident's alerts that move to a new incident",
    )
    actor: PlainName = Field(description="who acts: a user name or email")
    comment: str = Field("", max_length=2000)

    @field_validator("alerts")
    @classmethod
    def _names_some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(
                "name at least one alert to split off, by its fingerprint (`firebreak incidents show ID` lists them)"
            )
        return list(dict.fromkeys(value))


def _not_open(incident: Incident, field: str, action: str) -> IngestError:
    if incident.merged_into:
        why = f"{incident.id} was merged into {incident.merged_into}"
        fix = f"{action} {incident.merged_into} instead" if action == "split" else f"merge into {incident.merged_into}"
    else:
        why, fix = (
            f"{incident.id} is resolved",
            "only open incidents (triggered or acknowledged) can be " + ("merged" if action == "merge" else "split"),
        )
    message = f"{why}; cannot merge into it" if field == "into" else f"{why}; nothing to {action}"
    return IngestError(409, "already_resolved", message, [Problem(field, fix)])


def _too_many(incident: Incident, action: str) -> IngestError | None:
    """The command carries the incident's alerts (a snapshot of their labels): at most MAX_MOVED_ALERTS."""
    if incident.alert_count <= MAX_MOVED_ALERTS:
        return None
    return IngestError(
        422,
        "too_many_alerts",
        f"{incident.id} holds {incident.alert_count} alerts; a {action} moves at most {MAX_MOVED_ALERTS}",
        [
            Problem(
                "incident_id",
                "merge the smaller incident into the larger one"
                if action == "merge"
                else "resolve it, or let its alerts resolve, instead",
            )
        ],
    )


def merge_refusal(source: Incident, target: Incident | None, into: str) -> IngestError | None:
    """Why `source` cannot be merged into the incident `into` (`target`, None if the read model has none), or None."""
    if not source.is_open:
        return _not_open(source, "incident_id", "merge")
    if into == source.id:
        return IngestError(
            422,
            "invalid_command",
            f"cannot merge {source.id} into itself",
            [Problem("into", "give the id of another open incident of the same correlation key")],
        )
    if target is None:
        return IngestError(
            404,
            "not_found",
            f"no incident {into} to merge into",
            [Problem("into", "give an incident id as `GET /api/v1/incidents` lists them")],
        )
    if not target.is_open:
        return _not_open(target, "into", "merge")
    if target.correlation_key != source.correlation_key:
        return IngestError(
            409,
            "different_correlation_keys",
            f"only incidents of one correlation key (one policy and group) can be merged: {source.id} "
            f"is {source.correlation_key} (policy {source.policy}), {target.id} is "
            f"{target.correlation_key} (policy {target.policy}). The grouping stage owns each key's "
            "incidents, and an alert's later copies reach only its own key's incidents",
            [
                Problem(
                    "into",
                    "give an open incident of the same correlation key, or acknowledge or "
                    "resolve each incident on its own",
                )
            ],
        )
    return _too_many(source, "merge")


def split_refusal(source: Incident, fingerprints: list[str]) -> IngestError | None:
    """Why these alerts cannot be split off `source`, or None."""
    if not source.is_open:
        return _not_open(source, "incident_id", "split")
    unknown = [
        Problem(
            f"alerts[{n}]",
            f"{fp} is not an alert of {source.id}; `firebreak incidents show {source.id}` lists its fingerprints",
        )
        for n, fp in enumerate(fingerprints)
        if fp not in source.alerts
    ]
    if unknown:
        return IngestError(
            422, "invalid_command", f"{len(unknown)} of the alerts named are not in {source.id}", unknown[:50]
        )
    if len(fingerprints) == len(source.alerts):
        return IngestError(
            422,
            "invalid_command",
            f"every alert of {source.id} is named: nothing would remain in it",
            [
                Problem(
                    "alerts",
                    f"leave at least one alert in it; to end {source.id}, resolve it instead "
                    f"(POST /api/v1/incidents/{source.id}/resolve)",
                )
            ],
        )
    if not any(source.alerts[fp].status is AlertStatus.firing for fp in fingerprints):
        return IngestError(
            422,
            "invalid_command",
            "none of the alerts named fires: the new incident would open only to resolve",
            [Problem("alerts", "name at least one firing alert")],
        )
    return _too_many(source, "split")


def command_for(
    action: CommandAction,
    source: Incident,
    actor: str,
    comment: str,
    now: datetime,
    *,
    into: str | None = None,
    alerts: list[str] | None = None,
) -> IncidentCommand:
    """The command record; 413 if the snapshot of the alerts makes it larger than one Kafka record holds."""
    command = IncidentCommand(
        action=action,
        incident_id=source.id,
        correlation_key=source.correlation_key,
        actor=actor,
        comment=comment,
        at=now,
        into=into,
        alerts=alerts or [],
        snapshot=snapshot(source, now),
    )
    if len(command.model_dump_json()) > MAX_RECORD_BYTES:
        fix = (
            "merge the smaller incident into the larger one" if action is CommandAction.merge else "resolve it instead"
        )
        raise IngestError(
            413,
            "command_too_large",
            f"the labels and annotations of {source.id}'s alerts, which the "
            f"{action.value} carries, are more than one Kafka record holds "
            f"({MAX_RECORD_BYTES} bytes)",
            [Problem("incident_id", fix)],
        )
    return command


def add_routes(
    app: web.Application,
    find_incident: FindIncident,
    get_incident: GetIncident,
    send: Send,
    parse: Callable[[type[BaseModel], bytes, str, str], Any],
    read: Callable[[web.Request], Awaitable[bytes]],
) -> None:
    """The two routes; `send` puts a command on Kafka (503 if it cannot)."""

    async def merge(request: web.Request) -> web.Response:
        args: MergeBody = parse(MergeBody, await read(request), "invalid_command", "the command")
        source = await find_incident(request)
        target = await get_incident(args.into) if source.is_open and args.into != source.id else None
        refused = merge_refusal(source, target, args.into)
        if refused is not None:
            raise refused
        request[AUDIT_DETAIL] = f"into {args.into}"
        now = datetime.now(UTC)
        await send(command_for(CommandAction.merge, source, args.actor, args.comment, now, into=args.into))
        return web.json_response(
            {"accepted": True, "incident_id": source.id, "action": "merge", "into": args.into}, status=202
        )

    async def split(request: web.Request) -> web.Response:
        args: SplitBody = parse(SplitBody, await read(request), "invalid_command", "the command")
        source = await find_incident(request)
        refused = split_refusal(source, args.alerts)
        if refused is not None:
            raise refused
        request[AUDIT_DETAIL] = f"{len(args.alerts)} alerts: {', '.join(args.alerts)}"
        now = datetime.now(UTC)
        await send(command_for(CommandAction.split, source, args.actor, args.comment, now, alerts=args.alerts))
        return web.json_response(
            {"accepted": True, "incident_id": source.id, "action": "split", "alerts": args.alerts}, status=202
        )

    app.router.add_post("/api/v1/incidents/{incident_id}/merge", merge)
    app.router.add_post("/api/v1/incidents/{incident_id}/split", split)
