"""The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`.

Request bodies are the same pydantic models the handlers parse with, so the schemas cannot drift; a test
checks that every route the server registers is documented here, and nothing else.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from ingest.params import BOOLEAN_CHOICES
from schemas import AlertIn, AlertmanagerWebhook, Incident, __version__
from schemas.decision import Decision
from schemas.notification import Delivery
from schemas.runbook import ActionResult, Run

ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a short reason, e.g. invalid_alert"},
        "message": {"type": "string", "description": "what is wrong and what to do"},
        "problems": {
            "type": "array",
            "items": {"type": "object", "properties": {"field": {"type": "string"}, "problem": {"type": "string"}}},
        },
    },
}

_TAGS = {
    "alerts": "Ingest",
    "incidents": "Incidents",
    "problems": "Incidents",
    "silences": "Silences",
    "changes": "Changes",
    "runs": "Runbooks",
    "runbooks": "Runbooks",
    "audit": "Audit",
    "l": "Signed links",
}


def _schema(model: type[BaseModel] | Any, defs: dict[str, Any]) -> dict[str, Any]:
    """A component reference for a model; its JSON Schema (and nested $defs) go to components."""
    if isinstance(model, type) and issubclass(model, BaseModel):
        name = model.__name__
        schema = model.model_json_schema(
            by_alias=True,
            ref_template="#/components/schemas/{model}",
            mode="serialization" if model in (Incident, Run, ActionResult, Delivery) else "validation",
        )
    else:
        name, schema = model
    for sub, body in schema.pop("$defs", {}).items():
        defs.setdefault(sub, body)
    defs.setdefault(name, schema)
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def document(bodies: dict[str, type[BaseModel]]) -> dict[str, Any]:
    """The document; `bodies` are the request models of the server (command, silence, change, decision, merge,
    split)."""
    defs: dict[str, Any] = {}
    alerts_in = (
        "AlertsIn",
        TypeAdapter(AlertIn | list[AlertIn]).json_schema(by_alias=True, ref_template="#/components/schemas/{model}"),
    )
    error = {
        "description": "refused; the body names the field and the fix",
        "content": _json({"$ref": "#/components/schemas/Error"}),
    }
    errors = {status: error for status in ("400", "401", "404", "409", "413", "415", "422")}
    unavailable = {
        "description": "Kafka or Redis unavailable; retry after Retry-After",
        "content": _json({"$ref": "#/components/schemas/Error"}),
    }
    accepted = {"description": "accepted: durable on Kafka (acks=all)", "content": _json({"type": "object"})}
    ok = {"description": "OK", "content": _json({"type": "object"})}

    def op(
        summary: str, responses: dict[str, Any], body: Any = None, params: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        found: dict[str, Any] = {"summary": summary, "responses": {**responses, **errors, "503": unavailable}}
        if body is not None:
            found["requestBody"] = {"required": True, "content": _json(_schema(body, defs))}
        if params:
            found["parameters"] = params
        return found

    def path_param(name: str) -> dict[str, Any]:
        return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}

    def query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}

    incident_id, run_id = path_param("incident_id"), path_param("run_id")
    link = [
        path_param("action"),
        path_param("incident_id"),
        query("by", {"type": "string"}, "who acts"),
        query("exp", {"type": "integer"}, "expiry, unix seconds"),
        query("sig", {"type": "string"}, "HMAC-SHA256, hex"),
    ]
    incidents_list = {
        "description": "incidents, newest first",
        "content": _json(
            {"type": "object", "properties": {"incidents": {"type": "array", "items": _schema(Incident, defs)}}}
        ),
    }
    explained = {
        "description": "the decisions, a one-line summary and the lines `firebreak explain` prints",
        "content": _json(
            {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "text": {"type": "array", "items": {"type": "string"}},
                    "decisions": {"type": "array", "items": _schema(Decision, defs)},
                },
            }
        ),
    }
    paths: dict[str, dict[str, Any]] = {
        "/api/v1/alerts/alertmanager": {
            "post": op("Alertmanager webhook (version 4)", {"202": accepted}, AlertmanagerWebhook)
        },
        "/api/v1/alerts": {"post": op("One alert or an array of alerts", {"202": accepted}, alerts_in)},
        "/api/v1/incidents": {
            "get": op(
                "List incidents",
                {"200": incidents_list},
                params=[
                    query(
                        "status",
                        {"enum": ["all", "open", "triggered", "acknowledged", "resolved"]},
                        "open = triggered or acknowledged",
                    ),
                    query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many"),
                ],
            )
        },
        "/api/v1/incidents/{incident_id}": {
            "get": op(
                "One incident",
                {"200": {"description": "the incident", "content": _json(_schema(Incident, defs))}},
                params=[incident_id],
            )
        },
        "/api/v1/incidents/{incident_id}/explain": {
            "get": op(
                "Why each alert is in the incident and why each page went out (the decision log)",
                {"200": explained},
                params=[incident_id],
            )
        },
        "/api/v1/alerts/{fingerprint}/explain": {
            "get": op(
                "An alert's decisions as a timeline: policy, dedup, suppression, incident, pages",
                {"200": explained},
                params=[path_param("fingerprint")],
            )
        },
        "/api/v1/incidents/{incident_id}/ack": {
            "post": op("Acknowledge", {"202": accepted}, bodies["command"], [incident_id])
        },
        "/api/v1/incidents/{incident_id}/resolve": {
            "post": op("Resolve by hand", {"202": accepted}, bodies["command"], [incident_id])
        },
        "/api/v1/incidents/{incident_id}/merge": {
            "post": op(
                "Merge into another open incident of the same correlation key: this one ends, its alerts join `into`",
                {"202": accepted},
                bodies["merge"],
                [incident_id],
            )
        },
        "/api/v1/incidents/{incident_id}/split": {
            "post": op(
                "Split the named alerts off into a new incident, which pages on its own (its id: `split_into` of this one)",
                {"202": accepted},
                bodies["split"],
                [incident_id],
            )
        },
        "/api/v1/incidents/{incident_id}/timeline": {
            "get": op(
                "Incident events, runbook results and notifications in time order", {"200": ok}, params=[incident_id]
            )
        },
        "/api/v1/problems": {"get": op("Problem records", {"200": ok})},
        "/api/v1/silences": {
            "get": op(
                "Silences that have not ended",
                {"200": ok},
                params=[query("all", {"enum": list(BOOLEAN_CHOICES)}, "1 or true: include ended")],
            ),
            "post": op("Create a silence", {"201": ok}, bodies["silence"]),
        },
        "/api/v1/silences/{silence_id}": {
            "delete": op("End a silence now", {"200": ok}, params=[path_param("silence_id")])
        },
        "/api/v1/changes": {"post": op("Record a deploy or config change", {"202": accepted}, bodies["change"])},
        "/api/v1/runs": {
            "get": op(
                "Runbook runs",
                {
                    "200": {
                        "description": "runs",
                        "content": _json(
                            {"type": "object", "properties": {"runs": {"type": "array", "items": _schema(Run, defs)}}}
                        ),
                    }
                },
                params=[
                    query("incident", {"type": "string"}, "only this incident's"),
                    query("status", {"type": "string"}, "only this status"),
                ],
            )
        },
        "/api/v1/runs/{run_id}": {
            "get": op(
                "One run", {"200": {"description": "the run", "content": _json(_schema(Run, defs))}}, params=[run_id]
            )
        },
        "/api/v1/runs/{run_id}/approve": {
            "post": op("Approve the step the run waits at", {"202": accepted}, bodies["decision"], [run_id])
        },
        "/api/v1/runs/{run_id}/reject": {
            "post": op("Reject the step the run waits at", {"202": accepted}, bodies["decision"], [run_id])
        },
        "/api/v1/runbooks/pause": {
            "get": op("Whether runbooks are paused", {"200": ok}),
            "post": op("Pause every runbook step (kill switch)", {"200": ok}, bodies["decision"]),
        },
        "/api/v1/runbooks/resume": {"post": op("Resume runbooks", {"200": ok})},
        "/api/v1/audit": {
            "get": op(
                "The audit log, newest first (admin)",
                {"200": ok},
                params=[query("limit", {"type": "integer", "minimum": 1, "maximum": 10000}, "at most this many")],
            )
        },
        "/l/{action}/{incident_id}": {
            "get": op("Signed link: confirmation page (no token)", {"200": {"description": "HTML"}}, params=link),
            "post": op("Signed link: acknowledge or resolve (no token)", {"202": {"description": "HTML"}}, params=link),
        },
        "/healthz": {"get": op("Liveness (no token)", {"200": ok})},
        "/readyz": {"get": op("Readiness: Kafka reachable (no token)", {"200": ok})},
        "/metrics": {"get": op("Prometheus metrics (no token)", {"200": {"description": "text exposition format"}})},
        "/openapi.json": {"get": op("This document (no token)", {"200": ok})},
    }
    for path, methods in paths.items():
        first = path.strip("/").split("/")
        tag = _TAGS.get(first[2] if first[0] == "api" else first[0], "Operations")
        for operation in methods.values():
            operation["tags"] = [tag]
            if path in ("/healthz", "/readyz", "/metrics", "/openapi.json") or path.startswith("/l/"):
                operation["security"] = []
    defs["Error"] = ERROR
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Firebreak API",
            "version": __version__,
            "description": "Alerts in, incidents out: ingest, incidents, silences, changes, runbook runs and signed links.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "x-scopes": "Tokens have a scope: ingest (post alerts and changes), operator (also read and act on incidents: ack, "
        "resolve, merge, split; silences, approvals), admin (also the runbook kill switch and the audit log). 403 names the scope needed.",
        "paths": paths,
        "components": {"schemas": defs, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def query_names(spec: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """(METHOD, route template) -> the query parameters the document lists for it: what a request may send."""
    return {
        (method.upper(), path): frozenset(p["name"] for p in op.get("parameters", []) if p["in"] == "query")
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
