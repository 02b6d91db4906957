"""Source adapters: turn a request body into canonical `Alert` records. Pure: time is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import TypeAdapter, ValidationError

from correlation.fingerprint import fingerprint
from ingest.errors import IngestError, Problem, from_validation_error
from schemas import Alert, AlertIn, AlertmanagerWebhook

MAX_CLOCK_SKEW = timedelta(hours=1)  # how far in the future a startsAt may be (a sender's clock running fast)

_ONE = TypeAdapter(AlertIn)
_MANY = TypeAdapter(list[AlertIn])


def canonical(alert: AlertIn, source: str, now: datetime, ignore: frozenset[str] = frozenset()) -> Alert:
    """The record that goes to Kafka: server-derived fingerprint; startsAt defaults to the time received (or to
    endsAt, if that is earlier: a resolve sent without startsAt by a sender whose clock is a little behind)."""
    default_start = min(now, alert.ends_at) if alert.ends_at is not None else now
    return Alert(
        fingerprint=fingerprint(alert.labels, ignore),
        status=alert.status,
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=alert.starts_at or default_start,
        ends_at=alert.ends_at,
        generator_url=alert.generator_url,
        source=source,
        received_at=now,
    )


def _check_start_times(alerts: list[AlertIn], now: datetime, prefix: str | None) -> None:
    """A startsAt far in the future is a broken clock or a forged alert: it would sort and group wrongly.
    `prefix` names the list the alerts are in (None: the body is one alert)."""
    problems = [Problem("startsAt" if prefix is None else f"{prefix}[{i}].startsAt",
                        f"{a.starts_at.isoformat()} is more than {MAX_CLOCK_SKEW} ahead of this server's clock; "
                        "fix the sender's clock or leave startsAt out")
                for i, a in enumerate(alerts) if a.starts_at is not None and a.starts_at > now + MAX_CLOCK_SKEW]
    if problems:
        summary = "; ".join(f"{p.field}: {p.problem}" for p in problems[:3])
        raise IngestError(422, "invalid_alert", f"the alerts do not match the schema: {summary}", problems[:50])


def _check_count(count: int, limit: int) -> None:
    if count == 0:
        raise IngestError(422, "no_alerts", "the request holds no alerts; send at least one")
    if count > limit:
        raise IngestError(413, "too_many_alerts", f"{count} alerts in one request is more than {limit}; split the batch")


def parse_alertmanager(body: bytes, now: datetime, max_alerts: int, ignore: frozenset[str] = frozenset()) -> list[Alert]:
    """Alertmanager webhook v4 (`POST /api/v1/alerts/alertmanager`)."""
    try:
        payload = AlertmanagerWebhook.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    _check_count(len(payload.alerts), max_alerts)
    _check_start_times(payload.alerts, now, "alerts")
    source = f"alertmanager:{payload.receiver}" if payload.receiver else "alertmanager"
    return _canonical_all(payload.alerts, source[:128], now, ignore, "alerts")


def parse_generic(body: bytes, now: datetime, max_alerts: int, ignore: frozenset[str] = frozenset()) -> list[Alert]:
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
    _check_start_times(alerts, now, "" if first == b"[" else None)
    return _canonical_all(alerts, "generic", now, ignore, "" if first == b"[" else None)


def _canonical_all(alerts: list[AlertIn], source: str, now: datetime, ignore: frozenset[str], prefix: str | None) -> list[Alert]:
    """Every alert as a record; a check the canonical record makes beyond the body's schema is a 422 naming
    the alert and the field, never a server error."""
    records, problems = [], []
    for index, alert in enumerate(alerts):
        try:
            records.append(canonical(alert, source, now, ignore))
        except ValidationError as exc:
            where = "" if prefix is None else f"{prefix}[{index}]."
            problems += [Problem(where + _ALIASES.get(str(e["loc"][0]), str(e["loc"][0])) if e["loc"] else where.rstrip("."),
                                 e["msg"].removeprefix("Value error, ")) for e in exc.errors()]
    if problems:
        summary = "; ".join(f"{p.field}: {p.problem}" for p in problems[:3])
        raise IngestError(422, "invalid_alert", f"the alerts do not match the schema: {summary}", problems[:50])
    return records


_ALIASES = {"starts_at": "startsAt", "ends_at": "endsAt", "generator_url": "generatorURL"}
