"""Source adapters: turn a request body into canonical `Alert` records. Pure: time is passed in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from correlation.fingerprint import fingerprint
from ingest.errors import IngestError, Problem, from_validation_error
from schemas import Alert, AlertIn, AlertmanagerWebhook
from schemas.alert import TIME_BOUNDS, TimeBounds, time_problems

_ONE = TypeAdapter(AlertIn)
_MANY = TypeAdapter(list[AlertIn])


@dataclass(frozen=True)
class Parsed:
    """What a request body holds: the alert records, and what the sender said it left out or we ignored.

    `truncated_alerts`: Alertmanager's webhook `truncatedAlerts` (alerts of the group beyond the receiver's
    `max_alerts`); `unknown_fields`: names of alert fields this release does not know, ignored (webhook only).
    """

    alerts: list[Alert]
    receiver: str = ""
    truncated_alerts: int = 0
    unknown_fields: list[str] = field(default_factory=list)


def canonical(
    alert: AlertIn, source: str, now: datetime, ignore: frozenset[str] = frozenset(), truncated_alerts: int = 0
) -> Alert:
    """The record that goes to Kafka: server-derived fingerprint; the status as of `now` (`AlertIn.status_at`);
    startsAt defaults to the time received (or to endsAt, if that is earlier: a resolve sent without startsAt by
    a sender whose clock is a little behind)."""
    default_start = min(now, alert.ends_at) if alert.ends_at is not None else now
    return Alert(
        fingerprint=fingerprint(alert.labels, ignore),
        status=alert.status_at(now),
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=alert.starts_at or default_start,
        ends_at=alert.ends_at,
        generator_url=alert.generator_url,
        source=source,
        received_at=now,
        truncated_alerts=truncated_alerts,
        expires_at=alert.expiry_at(now),
    )


def _check_times(alerts: list[AlertIn], now: datetime, prefix: str | None, bounds: TimeBounds | None) -> None:
    """Every time a sender gives lies within `bounds` of `now`, or the request is refused with each field
    named. `prefix` names the list the alerts are in (None: the body is one alert); `bounds` None (sample
    files read offline, e.g. `firebreak runbook test`) checks nothing."""
    if bounds is None:
        return
    problems = [
        Problem(name if prefix is None else f"{prefix}[{i}].{name}", problem)
        for i, a in enumerate(alerts)
        for name, problem in time_problems(a, now, bounds)
    ]
    if problems:
        summary = "; ".join(f"{p.field}: {p.problem}" for p in problems[:3])
        raise IngestError(422, "invalid_alert", f"the alerts do not match the schema: {summary}", problems[:50])


def _check_count(count: int, limit: int) -> None:
    if count == 0:
        raise IngestError(422, "no_alerts", "the request holds no alerts; send at least one")
    if count > limit:
        raise IngestError(
            413, "too_many_alerts", f"{count} alerts in one request is more than {limit}; split the batch"
        )


def parse_alertmanager(
    body: bytes,
    now: datetime,
    max_alerts: int,
    ignore: frozenset[str] = frozenset(),
    bounds: TimeBounds | None = TIME_BOUNDS,
) -> Parsed:
    """Alertmanager webhook v4 (`POST /api/v1/alerts/alertmanager`; Alertmanager's `notify/webhook` payload).

    `truncatedAlerts` travels on every record of the request, so the incident they join can say so; unknown
    alert fields are ignored and reported in `Parsed.unknown_fields`."""
    try:
        payload = AlertmanagerWebhook.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    _check_count(len(payload.alerts), max_alerts)
    _check_times(payload.alerts, now, "alerts", bounds)
    source = f"alertmanager:{payload.receiver}" if payload.receiver else "alertmanager"
    unknown = sorted({name for a in payload.alerts for name in a.unknown_fields})
    alerts = _canonical_all(payload.alerts, source[:128], now, ignore, "alerts", payload.truncated_alerts)
    return Parsed(alerts, payload.receiver, payload.truncated_alerts, unknown)


def parse_generic(
    body: bytes,
    now: datetime,
    max_alerts: int,
    ignore: frozenset[str] = frozenset(),
    bounds: TimeBounds | None = TIME_BOUNDS,
) -> Parsed:
    """The generic format (`POST /api/v1/alerts`): one alert object or a JSON array of them."""
    first = body.lstrip()[:1]
    try:
        if first == b"[":
            alerts = _MANY.validate_json(body)
        elif first == b"{":
            alerts = [_ONE.validate_json(body)]
        else:
            raise IngestError(400, "malformed_json", "the body must be a JSON object (one alert) or an array of alerts")
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    _check_count(len(alerts), max_alerts)
    _check_times(alerts, now, "" if first == b"[" else None, bounds)
    return Parsed(_canonical_all(alerts, "generic", now, ignore, "" if first == b"[" else None))


def _canonical_all(
    alerts: list[AlertIn],
    source: str,
    now: datetime,
    ignore: frozenset[str],
    prefix: str | None,
    truncated_alerts: int = 0,
) -> list[Alert]:
    """Every alert as a record; a check the canonical record makes beyond the body's schema is a 422 naming
    the alert and the field, never a server error."""
    records, problems = [], []
    for index, alert in enumerate(alerts):
        try:
            records.append(canonical(alert, source, now, ignore, truncated_alerts))
        except ValidationError as exc:
            where = "" if prefix is None else f"{prefix}[{index}]."
            problems += [
                Problem(
                    where + _ALIASES.get(str(e["loc"][0]), str(e["loc"][0])) if e["loc"] else where.rstrip("."),
                    e["msg"].removeprefix("Value error, "),
                )
                for e in exc.errors()
            ]
    if problems:
        summary = "; ".join(f"{p.field}: {p.problem}" for p in problems[:3])
        raise IngestError(422, "invalid_alert", f"the alerts do not match the schema: {summary}", problems[:50])
    return records


_ALIASES = {"starts_at": "startsAt", "ends_at": "endsAt", "generator_url": "generatorURL"}
