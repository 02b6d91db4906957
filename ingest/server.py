"""The ingest and read API over HTTP (aiohttp). Handlers translate; the adapters and stores decide."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from redis.exceptions import RedisError

from adapters.action_log import ActionLog, NotificationLog
from adapters.change_store import RETENTION as CHANGE_RETENTION
from adapters.decision_log import DecisionLog
from adapters.links import Links
from adapters.metrics import (
    ALERTS_RECEIVED,
    ALERTS_REJECTED,
    ALERTS_TRUNCATED,
    INGEST,
    INGEST_LATENCY,
    INGEST_REQUESTS,
    UNKNOWN_FIELDS,
)
from adapters.readmodel import STATUS_FILTERS, IncidentStore
from adapters.run_store import RunStore
from adapters.secrets import Secrets
from adapters.silence_store import SilenceStore
from correlation.explain import alert_report, incident_report
from correlation.suppression import SilenceAlreadyExpired, expire
from ingest import links_api, openapi, regroup_api, runs_api
from ingest.adapters import Parsed, parse_alertmanager, parse_generic
from ingest.audit import AUDIT_DETAIL, AuditLog
from ingest.auth import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Principal,
    RateLimits,
    Scope,
    SignedSources,
    TokenAuth,
    audited,
    required_scope,
    retry_after,
)
from ingest.errors import IngestError, Problem, from_validation_error
from ingest.params import bool_param, check_request_values, choice_param, int_param, known_params, printable
from ingest.producer import DurableProducer, KafkaUnavailable
from schemas import ChangeEvent, ChangeKind, CommandAction, Incident, IncidentCommand, Silence
from schemas.alert import TIME_BOUNDS, OptionalTime, PlainName
from schemas.durations import parse_duration
from schemas.errors import FirebreakError
from schemas.silence import refuse_silencing_everything

log = logging.getLogger("firebreak.ingest")


class Settings(Protocol):
    """What the API reads of the settings; firebreak.settings.Settings has these options (docs/reference/settings.md).

    Declared here so that the HTTP layer depends on the options it uses, not on the composition root."""

    ingest_tokens: list[SecretStr]
    auth_disabled: bool
    ingest_hmac_secrets: list[str]
    ingest_rate_per_token: float
    ingest_max_inflight: int
    max_request_bytes: int
    max_alerts_per_request: int
    http_read_timeout_seconds: float
    fingerprint_ignore_labels: list[str]
    redis_prefix: str
    decision_retention_hours: float
    decision_max_per_key: int
    public_url: str
    link_ttl_seconds: float
    secrets_dir: Path | None


class CommandBody(BaseModel):
    """Body of POST /api/v1/incidents/{id}/ack|resolve."""

    model_config = ConfigDict(extra="forbid")

    actor: PlainName = Field(description="who acts: a user name or email")
    comment: str = Field("", max_length=2000)


class SilenceBody(BaseModel):
    """Body of POST /api/v1/silences: matchers, a time range (or a duration from now), who and why."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    matchers: list[str] = Field(min_length=1, max_length=32)
    starts_at: OptionalTime = Field(None, alias="startsAt")
    ends_at: OptionalTime = Field(None, alias="endsAt")
    duration: str | None = Field(None, description="instead of endsAt: 30m, 2h, 1d")
    created_by: PlainName = Field(alias="createdBy")
    comment: str = Field(min_length=1, max_length=2000)

    @field_validator("matchers")
    @classmethod
    def _names_what_it_silences(cls, value: list[str]) -> list[str]:
        return refuse_silencing_everything(value)


class ChangeBody(BaseModel):
    """Body of POST /api/v1/changes."""

    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=128)
    kind: ChangeKind = ChangeKind.deploy
    summary: str = Field(min_length=1, max_length=500)
    author: str = Field("", max_length=128)
    url: str = Field("", max_length=2048)
    at: OptionalTime = None


# The request models the handlers parse with, which /openapi.json documents.
REQUEST_BODIES: dict[str, type[BaseModel]] = {
    "command": CommandBody,
    "silence": SilenceBody,
    "change": ChangeBody,
    "decision": runs_api.DecisionBody,
    "merge": regroup_api.MergeBody,
    "split": regroup_api.SplitBody,
}


def _parse_body(model: type[BaseModel], body: bytes, reason: str = "invalid_alert", subject: str = "the alerts") -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc, reason=reason, subject=subject) from exc


MAX_SILENCE_AHEAD = timedelta(days=366)  # how far ahead a silence may start or end

OPEN_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
Parser = Callable[[bytes, datetime, int, frozenset[str]], Parsed]

PRODUCER = web.AppKey("producer", DurableProducer)
STORE = web.AppKey("store", IncidentStore)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
SILENCES = web.AppKey("silences", SilenceStore)
AUTH = web.AppKey("auth", TokenAuth)
AUDIT = web.AppKey("audit", AuditLog)
LIMITS = web.AppKey("limits", RateLimits)
SIGNED = web.AppKey("signed", SignedSources)
DECISIONS = web.AppKey("decisions", DecisionLog)
QUERY_NAMES = web.AppKey("query_names", dict)  # (METHOD, route) -> the query parameters it takes
INFLIGHT = web.AppKey("inflight", list)  # [requests waiting for Kafka to acknowledge]


def _json_error(err: IngestError) -> web.Response:
    return web.json_response(err.body(), status=err.status, headers=err.headers or None)


def _route(request: web.Request) -> str:
    """The route template (`/api/v1/incidents/{incident_id}`), or `unmatched`: a bounded metric label and the
    audit's action, never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource else "unmatched"


def _as_ingest_error(exc: Exception, request: web.Request) -> IngestError:
    """Any failure of a request as the error to answer: ours as they are, Redis down as 503, aiohttp's own
    (404 no route, 405, 413) with a message naming the fix, anything else as 500, logged with its traceback."""
    if isinstance(exc, IngestError):
        return exc
    if isinstance(exc, RedisError):
        # Every read-model, silence and coordination call: Redis down is the client's cue to retry.
        log.warning("answering 503: Redis unavailable (%s)", exc)
        return IngestError(
            503, "redis_unavailable", f"Redis is unavailable ({exc}); retry", headers={"Retry-After": "5"}
        )
    if isinstance(exc, web.HTTPException):
        return _from_http_exception(exc, request)
    log.error("answering 500 to %s %s", request.method, _route(request), exc_info=exc)
    return IngestError(
        500,
        "internal_error",
        "the server failed on this request (its log has the traceback); "
        "retry, and report it with the time if it persists",
    )


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> IngestError:
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    if exc.status == 404:
        return IngestError(
            404,
            "not_found",
            f"no route {request.method} {printable(request.path, 200)}; the routes are listed in /openapi.json",
        )
    if exc.status == 405:
        # The path as sent: a 405 matched no route, so there is no route template to name.
        return IngestError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {printable(request.path, 200)}; "
            f"it allows {headers.get('Allow') or 'no other method'}",
            headers=headers,
        )
    if exc.status == 413:
        return _too_large(request)
    return IngestError(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason, headers=headers)


@web.middleware
async def _observe(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The catch-all: whatever fails becomes a JSON error (`{"error", "message", "problems"}`), never a
    traceback page, and every answer, errors included, is counted in `firebreak_ingest_requests_total`."""
    route = _route(request)
    started = time.perf_counter()
    try:
        response = await handler(request)
    except Exception as exc:  # noqa: BLE001 - the one place every failure is answered; _as_ingest_error logs the unexpected
        response = _json_error(_as_ingest_error(exc, request))
    INGEST_REQUESTS.labels(route, str(response.status)).inc()
    INGEST_LATENCY.labels(route).observe(time.perf_counter() - started)
    return response


LINK_PRINCIPAL = Principal("signed-link", Scope.operator)


async def _principal(request: web.Request) -> Principal:
    """Who is asking: a signed link (its signature is checked by links_api), everyone when auth is disabled,
    a signed source, or a bearer token; 401 for a missing or wrong credential."""
    if request.path.startswith(links_api.PREFIX):
        return LINK_PRINCIPAL
    if request.app[SETTINGS].auth_disabled:
        return Principal("auth-disabled", Scope.admin)
    if request.headers.get(SIGNATURE_HEADER) and request.app[SIGNED].keys:
        # Signed sources: verified over the raw body, before anything parses it.
        return request.app[SIGNED].verify(
            request.headers[SIGNATURE_HEADER], request.headers.get(TIMESTAMP_HEADER, ""), await _read_body(request)
        )
    return request.app[AUTH].check(request.headers.get("Authorization"))


def _authorize(request: web.Request, principal: Principal) -> None:
    """429 for a token over its rate, 403 (naming the scope needed) for a token below the route's scope."""
    if principal is LINK_PRINCIPAL or request.app[SETTINGS].auth_disabled:
        return
    wait = request.app[LIMITS].wait_for(principal.name)
    if wait > 0:
        raise IngestError(
            429,
            "rate_limited",
            f"token {principal.name!r} is over its rate of {request.app[LIMITS].rate:g} requests a second; retry later",
            headers={"Retry-After": retry_after(wait)},
        )
    route = _route(request)
    needed = required_scope(request.method, route)
    if principal.scope < needed:
        raise IngestError(
            403,
            "forbidden",
            f"token {principal.name!r} has scope {principal.scope.name}; {request.method} {route} needs {needed.name}",
        )


@web.middleware
async def _authenticate(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Who is asking (the token's name and scope), whether the scope allows the route, and the audit entry
    of an operator or admin action, refused ones included (ingest/audit.py). Path and query values are
    checked first: nothing unprintable or overlong reaches a handler, a store or a log."""
    if request.path in OPEN_ROUTES:
        check_request_values(request.match_info, request.query)
        return await handler(request)
    route = _route(request)
    is_audited = audited(request.method, route) or (
        request.path.startswith(links_api.PREFIX) and request.method == "POST"
    )
    principal: Principal | None = None
    try:
        check_request_values(request.match_info, request.query)
        principal = await _principal(request)
        _authorize(request, principal)  # before the parameter names: a stranger learns nothing of a route
        if request.path.startswith("/api/") and route != "unmatched":  # a script's typo must not pass silently
            known_params(
                request.query,
                request.app[QUERY_NAMES].get((request.method, route), frozenset()),
                f"{request.method} {route}",
            )
        response = await handler(request)
    except Exception as exc:  # noqa: BLE001 - answered and audited like any refusal
        err = _as_ingest_error(exc, request)
        if is_audited:
            await _audit(request, principal, err.status, err.message)
        raise err from None
    if is_audited:
        await _audit(request, principal, response.status, request.get(AUDIT_DETAIL, ""))
    return response


async def _audit(request: web.Request, principal: Principal | None, status: int, detail: str = "") -> None:
    """One audit entry; requests without a valid credential go to the log's rate-limited list of their own."""
    action, target = f"{request.method} {_route(request)}", dict(request.match_info)
    actor = await _named_actor(request)
    if principal is None or (principal is LINK_PRINCIPAL and not request.get(links_api.VERIFIED)):
        await request.app[AUDIT].record_unauthenticated(
            action=action, target=target, actor=actor, status=status, detail=detail
        )
    else:
        await request.app[AUDIT].record(
            principal=principal.name, action=action, target=target, actor=actor, status=status, detail=detail
        )


async def _named_actor(request: web.Request) -> str | None:
    """The actor the request named: `actor` or `createdBy` of its JSON body, else the `by` of a signed link."""
    if request.body_exists and request.content_type == "application/json":
        try:
            body = json.loads(await _read_body(request))
        except (IngestError, ValueError, RecursionError):
            body = None
        named = (body.get("actor") or body.get("createdBy")) if isinstance(body, dict) else None
        if isinstance(named, str):
            return named
    return request.query.get("by")


_BODY = web.RequestKey("body", object)  # the body's bytes, or the IngestError reading it ended with


def _too_large(request: web.Request) -> IngestError:
    limit = request.app[SETTINGS].max_request_bytes
    return IngestError(413, "body_too_large", f"the body is larger than {limit} bytes; split the batch")


async def _read_body(request: web.Request) -> bytes:
    """The raw body, read once: at most `max_request_bytes` (else 413) within `http_read_timeout_seconds`
    (else 408, so a client that sends half a body cannot hold a handler). A second call answers the same."""
    if _BODY not in request:
        request[_BODY] = await _read_once(request)
    outcome = request[_BODY]
    if isinstance(outcome, IngestError):
        raise outcome
    return outcome


async def _read_once(request: web.Request) -> bytes | IngestError:
    settings = request.app[SETTINGS]
    if request.content_length is not None and request.content_length > settings.max_request_bytes:
        return _too_large(request)
    try:
        async with asyncio.timeout(settings.http_read_timeout_seconds):
            return await request.read()  # aiohttp enforces max_request_bytes (client_max_size) here
    except web.HTTPRequestEntityTooLarge:
        return _too_large(request)
    except TimeoutError:
        return IngestError(
            408,
            "request_timeout",
            f"the body did not arrive within {settings.http_read_timeout_seconds:g} s "
            "(http_read_timeout_seconds); send the whole request at once",
        )


async def _read_json_body(request: web.Request) -> bytes:
    if request.content_type != "application/json":
        raise IngestError(
            415, "unsupported_media_type", f"Content-Type is {request.content_type or 'missing'}; send application/json"
        )
    body = await _read_body(request)
    if not body.strip():
        raise IngestError(400, "empty_body", "the body is empty; send a JSON alert or array of alerts")
    _reject_duplicate_keys(body)
    return body


class _DuplicateKey(FirebreakError, ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _reject_duplicate_keys(body: bytes) -> None:
    """400 for an object with a key twice: parsers disagree on which value wins, so the body is ambiguous.
    Anything else wrong with the body is left to the schema, which names the field."""
    try:
        json.loads(body, object_pairs_hook=_unique_pairs)
    except _DuplicateKey as exc:
        raise IngestError(
            400, "duplicate_key", f"the key {str(exc)!r} appears twice in one object; send it once"
        ) from None
    except (ValueError, RecursionError):
        return


def _ingest_handler(parser: Parser, source: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        settings = request.app[SETTINGS]
        try:
            body = await _read_json_body(request)
            parsed = parser(
                body, datetime.now(UTC), settings.max_alerts_per_request, frozenset(settings.fingerprint_ignore_labels)
            )
        except IngestError as err:
            ALERTS_REJECTED.labels(source, err.reason).inc()
            raise
        alerts = parsed.alerts
        _report_left_out(parsed, source)
        inflight = request.app[INFLIGHT]
        if inflight[0] >= settings.ingest_max_inflight:
            # Kafka is not keeping up: say so at once (the sender retries) instead of queueing without bound.
            ALERTS_REJECTED.labels(source, "overloaded").inc()
            return _json_error(
                IngestError(
                    429,
                    "overloaded",
                    f"{inflight[0]} requests are waiting for Kafka already; retry in a second",
                    headers={"Retry-After": "1"},
                )
            )
        inflight[0] += 1
        try:
            await request.app[PRODUCER].send_alerts(alerts)
        except KafkaUnavailable as exc:
            ALERTS_REJECTED.labels(source, "kafka_unavailable").inc()
            return _kafka_unavailable(exc)
        finally:
            inflight[0] -= 1
        ALERTS_RECEIVED.labels(source).inc(len(alerts))
        return web.json_response({"accepted": len(alerts), "fingerprints": [a.fingerprint for a in alerts]}, status=202)

    return handle


_RECEIVER_LABELS: set[str] = set()
MAX_RECEIVER_LABELS = 50  # a sender names its receiver: beyond this many distinct names, "other" (bounded series)


def _receiver_label(receiver: str) -> str:
    name = receiver[:64]
    if name in _RECEIVER_LABELS or len(_RECEIVER_LABELS) < MAX_RECEIVER_LABELS:
        _RECEIVER_LABELS.add(name)
        return name
    return "other"


def _report_left_out(parsed: Parsed, source: str) -> None:
    """Say what the sender left out (Alertmanager's `truncatedAlerts`) or what this release ignored (unknown
    alert fields): counted and logged; the truncation also travels on the records to the incident."""
    if parsed.truncated_alerts:
        ALERTS_TRUNCATED.labels(_receiver_label(parsed.receiver)).inc(parsed.truncated_alerts)
        log.warning(
            "Alertmanager receiver %r left %d alerts of a group out of its webhook (truncatedAlerts); raise "
            "max_alerts on that receiver's webhook_configs to send them all",
            parsed.receiver[:64],
            parsed.truncated_alerts,
        )
    if parsed.unknown_fields:
        UNKNOWN_FIELDS.labels(source).inc(len(parsed.unknown_fields))
        log.info(
            "ignored alert fields this release does not know: %s",
            ", ".join(ascii(name[:64]) for name in parsed.unknown_fields[:10]),
        )


def _kafka_unavailable(exc: KafkaUnavailable) -> web.Response:
    log.warning("answering 503: %s", exc)
    return _json_error(
        IngestError(
            503,
            "kafka_unavailable",
            "Kafka did not acknowledge; nothing was accepted, retry",
            headers={"Retry-After": "5"},
        )
    )


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    if await request.app[PRODUCER].ready():
        return web.json_response({"status": "ready", "kafka": "ok"})
    return web.json_response({"status": "not ready", "kafka": "unreachable"}, status=503)


async def _metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=generate_latest(INGEST), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )  # ingest's own only


async def _list_incidents(request: web.Request) -> web.Response:
    status = choice_param(request.query, "status", STATUS_FILTERS, "all")
    limit = int_param(request.query, "limit", 100, 1, 1000)
    incidents = await request.app[STORE].list(status=status, limit=limit)  # type: ignore[arg-type]
    return web.json_response({"incidents": [i.model_dump(mode="json") for i in incidents]})


async def _find_incident(request: web.Request) -> Incident:
    incident = await request.app[STORE].get(request.match_info["incident_id"])
    if incident is None:
        raise IngestError(404, "not_found", "no incident with that id; list them with GET /api/v1/incidents")
    return incident


async def _list_problems(request: web.Request) -> web.Response:
    problems = await request.app[STORE].problems()
    return web.json_response({"problems": problems})


async def _get_incident(request: web.Request) -> web.Response:
    return web.json_response((await _find_incident(request)).model_dump(mode="json"))


async def _explain_alert(request: web.Request) -> web.Response:
    fingerprint = request.match_info["fingerprint"]
    decisions = await request.app[DECISIONS].story(fingerprint)
    if not decisions:
        hours = request.app[SETTINGS].decision_retention_hours
        raise IngestError(
            404,
            "not_found",
            f"no decisions recorded for alert {fingerprint} in the last {hours:g} hours; "
            "check the fingerprint (incidents list their alerts' fingerprints)",
        )
    return web.json_response(alert_report(fingerprint, decisions))


async def _explain_incident(request: web.Request) -> web.Response:
    incident_id = request.match_info["incident_id"]
    decisions = await request.app[DECISIONS].for_incident(incident_id)
    if not decisions:
        raise IngestError(
            404,
            "not_found",
            f"no decisions recorded for incident {incident_id} within the retention; "
            "list incidents with GET /api/v1/incidents",
        )
    return web.json_response(incident_report(incident_id, decisions))


def _command_handler(action: CommandAction) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        args: CommandBody = _parse_body(CommandBody, await _read_json_body(request), "invalid_command", "the command")
        incident = await _find_incident(request)
        if not incident.is_open:
            merged = f"was merged into {incident.merged_into}" if incident.merged_into else "is resolved"
            raise IngestError(409, "already_resolved", f"{incident.id} {merged}; nothing to {action.value}")
        command = IncidentCommand(
            action=action,
            incident_id=incident.id,
            correlation_key=incident.correlation_key,
            actor=args.actor,
            comment=args.comment,
            at=datetime.now(UTC),
        )
        try:
            await request.app[PRODUCER].send(
                "alert-events", [(command.correlation_key.encode(), command.model_dump_json().encode())]
            )
        except KafkaUnavailable as exc:
            return _kafka_unavailable(exc)
        # Accepted, not yet applied: the worker applies it in order with the incident's alerts.
        return web.json_response({"accepted": True, "incident_id": incident.id, "action": action.value}, status=202)

    return handle


def _command_sender(producer: DurableProducer, retry: str) -> Callable[[IncidentCommand], Awaitable[None]]:
    """Puts a person's command on `alert-events`, keyed by its correlation key; 503 (`retry` says what to do) if
    Kafka does not acknowledge it."""

    async def send(command: IncidentCommand) -> None:
        try:
            await producer.send(
                "alert-events", [(command.correlation_key.encode(), command.model_dump_json().encode())]
            )
        except KafkaUnavailable as exc:
            raise IngestError(
                503, "kafka_unavailable", f"Kafka is unavailable ({exc}); {retry}", headers={"Retry-After": "5"}
            ) from exc

    return send


async def _create_silence(request: web.Request) -> web.Response:
    args: SilenceBody = _parse_body(SilenceBody, await _read_json_body(request), "invalid_silence", "the silence")
    now = datetime.now(UTC)
    starts = max(args.starts_at or now, now)  # as Alertmanager: a silence cannot start in the past
    if (args.ends_at is None) == (args.duration is None):
        raise IngestError(
            422,
            "invalid_silence",
            'give exactly one of endsAt or duration (e.g. "2h")',
            [Problem("endsAt", "set endsAt or duration, not both or neither")],
        )
    _within_horizon("startsAt", starts, now)  # first: a start near year 9999 plus a duration is no datetime
    try:
        ends = args.ends_at or starts + parse_duration(args.duration)
    except ValueError as exc:
        raise IngestError(422, "invalid_silence", str(exc), [Problem("duration", str(exc))]) from exc
    _check_times(starts, ends, now)
    try:
        silence = Silence(
            id=uuid.uuid4().hex[:12],
            matchers=args.matchers,
            starts_at=starts,
            ends_at=ends,
            created_by=args.created_by,
            comment=args.comment,
        )
    except ValidationError as exc:
        raise from_validation_error(exc, reason="invalid_silence", subject="the silence") from exc
    await request.app[SILENCES].put(silence)
    log.info("silence %s created by %s: %s until %s", silence.id, silence.created_by, silence.matchers, silence.ends_at)
    return web.json_response(silence.model_dump(mode="json", by_alias=True), status=201)


def _check_times(starts: datetime, ends: datetime, now: datetime) -> None:
    """Alertmanager's API v2 rules for a new silence (api/v2 postSilencesHandler): it starts before it ends, and it
    has not ended already."""
    field = "endsAt" if starts <= now else "startsAt"
    if ends <= starts:
        raise IngestError(
            422,
            "invalid_silence",
            "start time must be before end time",
            [Problem(field, "give an endsAt after startsAt, or a positive duration")],
        )
    if ends <= now:
        raise IngestError(
            422,
            "invalid_silence",
            "end time can't be in the past",
            [Problem("endsAt", "give an endsAt in the future, or a duration")],
        )
    _within_horizon("endsAt", ends, now)


def _within_horizon(name: str, value: datetime, now: datetime) -> None:
    """Bounded at the edge: a silence "until 9999" hides its alerts for good; 422 naming the field."""
    if value > now + MAX_SILENCE_AHEAD:
        raise IngestError(
            422,
            "invalid_silence",
            f"{name} is more than {MAX_SILENCE_AHEAD.days} days ahead",
            [
                Problem(
                    name,
                    f"silence at most {MAX_SILENCE_AHEAD.days} days ahead; create a new silence when this one ends",
                )
            ],
        )


async def _list_silences(request: web.Request) -> web.Response:
    show_all = bool_param(request.query, "all")
    found = await request.app[SILENCES].all()
    if not show_all:
        now = datetime.now(UTC)
        found = [s for s in found if s.ends_at > now]
    return web.json_response({"silences": [s.model_dump(mode="json", by_alias=True) for s in found]})


async def _expire_silence(request: web.Request) -> web.Response:
    store = request.app[SILENCES]
    silence = await store.get(request.match_info["silence_id"])
    if silence is None:
        raise IngestError(404, "not_found", "no silence with that id; list them with GET /api/v1/silences")
    try:
        ended = expire(silence, datetime.now(UTC))
    except SilenceAlreadyExpired as exc:
        # Alertmanager's API v2 answers this with an error too (a 500 there); it is a conflict with the silence's
        # state, not a server fault: 409, as for acknowledging a resolved incident.
        raise IngestError(
            409,
            "invalid_silence",
            f"{exc}; nothing to expire: list active silences with GET /api/v1/silences",
            [Problem("silence_id", "names a silence that has already ended")],
        ) from exc
    await store.put(ended)
    return web.json_response(ended.model_dump(mode="json", by_alias=True))


async def _record_change(request: web.Request) -> web.Response:
    args: ChangeBody = _parse_body(ChangeBody, await _read_json_body(request), "invalid_change", "the change")
    now = datetime.now(UTC)
    if args.at is not None and not now - CHANGE_RETENTION <= args.at <= now + TIME_BOUNDS.skew:
        # A change "made" next year would be a suspect of every incident until then; one older than the
        # change store keeps is never read.
        raise IngestError(
            422,
            "invalid_change",
            f"at {args.at.isoformat()} is not within the last "
            f"{CHANGE_RETENTION.days} days (or {TIME_BOUNDS.skew} ahead)",
            [Problem("at", "give the time the change was made, or leave it out for now")],
        )
    change = ChangeEvent(
        id=uuid.uuid4().hex[:12],
        service=args.service,
        kind=args.kind,
        summary=args.summary,
        author=args.author,
        url=args.url,
        at=args.at or now,
    )
    try:
        await request.app[PRODUCER].send("changes", [(change.service.encode(), change.model_dump_json().encode())])
    except KafkaUnavailable as exc:
        return _kafka_unavailable(exc)
    return web.json_response(change.model_dump(mode="json"), status=202)


def _hmac_keys(settings: Settings) -> dict[str, list[bytes]]:
    """The keys of signed sources: each secret named in `ingest_hmac_secrets`, one key per line."""
    secrets = Secrets(settings.secrets_dir)
    return {
        name: [k.strip().encode() for k in secrets.get(name).splitlines() if k.strip()]
        for name in settings.ingest_hmac_secrets
    }


def create_app(
    settings: Settings,
    producer: DurableProducer,
    store: IncidentStore,
    silences: SilenceStore,
    links: Links | None = None,
) -> web.Application:
    tokens = [t.get_secret_value() for t in settings.ingest_tokens]
    if not tokens and not settings.auth_disabled and not settings.ingest_hmac_secrets:
        raise ValueError("no ingest token configured; set FIREBREAK_INGEST_TOKENS or FIREBREAK_INGEST_TOKENS_FILE")
    app = web.Application(client_max_size=settings.max_request_bytes, middlewares=[_observe, _authenticate])
    app[SETTINGS] = settings
    app[PRODUCER] = producer
    app[STORE] = store
    app[SILENCES] = silences
    app[AUTH] = TokenAuth(tokens)
    app[INFLIGHT] = [0]
    app[LIMITS] = RateLimits(settings.ingest_rate_per_token)
    app[SIGNED] = SignedSources(_hmac_keys(settings))
    app[AUDIT] = AuditLog(store.redis, settings.redis_prefix)
    app[DECISIONS] = DecisionLog.from_settings(store.redis, settings)

    async def audit_list(request: web.Request) -> web.Response:
        """Both lists of the audit log (ingest/audit.py), newest first, `limit` (1-10000) of each."""
        limit = int_param(request.query, "limit", 100, 1, 10_000)
        audit = request.app[AUDIT]
        return web.json_response(
            {"entries": await audit.list(limit), "unauthenticated": await audit.list_unauthenticated(limit)}
        )

    app.router.add_get("/api/v1/audit", audit_list)
    app.router.add_post("/api/v1/alerts/alertmanager", _ingest_handler(parse_alertmanager, "alertmanager"))
    app.router.add_post("/api/v1/alerts", _ingest_handler(parse_generic, "generic"))
    app.router.add_get("/api/v1/incidents", _list_incidents)
    app.router.add_get("/api/v1/incidents/{incident_id}", _get_incident)
    app.router.add_get("/api/v1/incidents/{incident_id}/explain", _explain_incident)
    app.router.add_get("/api/v1/alerts/{fingerprint}/explain", _explain_alert)
    app.router.add_get("/api/v1/problems", _list_problems)
    app.router.add_post("/api/v1/incidents/{incident_id}/ack", _command_handler(CommandAction.acknowledge))
    app.router.add_post("/api/v1/incidents/{incident_id}/resolve", _command_handler(CommandAction.resolve))

    regroup_api.add_routes(
        app,
        _find_incident,
        store.get,
        _command_sender(producer, "nothing was accepted, retry"),
        _parse_body,
        _read_json_body,
    )
    app.router.add_post("/api/v1/silences", _create_silence)
    app.router.add_get("/api/v1/silences", _list_silences)
    app.router.add_delete("/api/v1/silences/{silence_id}", _expire_silence)
    app.router.add_post("/api/v1/changes", _record_change)
    runs_api.add_routes(
        app,
        RunStore(store.redis, settings.redis_prefix),
        ActionLog(store.redis, settings.redis_prefix),
        NotificationLog(store.redis, settings.redis_prefix),
        _find_incident,
        _parse_body,
        _read_json_body,
    )

    links_api.add_routes(
        app,
        links or Links(settings.public_url, [], settings.link_ttl_seconds),
        store.get,
        _command_sender(producer, "open the link again in a minute"),
    )
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    spec = openapi.document(REQUEST_BODIES)
    app[QUERY_NAMES] = openapi.query_names(spec)  # the documented parameters are the accepted ones

    async def openapi_json(request: web.Request) -> web.Response:
        return web.json_response(spec)

    app.router.add_get("/openapi.json", openapi_json)

    async def lifecycle(app: web.Application) -> object:
        await producer.start()
        yield
        await producer.stop()

    app.cleanup_ctx.append(lifecycle)  # type: ignore[arg-type]
    return app
