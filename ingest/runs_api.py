"""The runbook part of the API: runs, approvals, the kill switch, and the incident timeline with actions.

- `GET  /api/v1/runs?incident=<id>&status=<s>`   runs, newest first
- `GET  /api/v1/runs/{run_id}`                     one run with its steps
- `POST /api/v1/runs/{run_id}/approve|reject`      `{"actor": ..., "comment": ...}`: decide the approval it waits at
- `GET  /api/v1/runbooks/pause`, `POST /api/v1/runbooks/pause|resume`  the global kill switch
- `GET  /api/v1/incidents/{incident_id}/timeline`  incident events, action results and notifications, in time order
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from adapters.action_log import IncidentLog
from adapters.run_store import RunStore
from ingest.errors import IngestError
from ingest.params import choice_param
from schemas.runbook import RunStatus

RUNS = web.AppKey("runs", RunStore)
ACTIONS = web.AppKey("actions", IncidentLog)
DELIVERIES = web.AppKey("deliveries", IncidentLog)

Handler = Callable[[web.Request], Awaitable[web.Response]]


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(min_length=1, max_length=128, description="who decides: a user name or email")
    comment: str = Field("", max_length=2000)


async def _list_runs(request: web.Request) -> web.Response:
    status = choice_param(request.query, "status", (s.value for s in RunStatus), None)
    runs = await request.app[RUNS].list(incident_id=request.query.get("incident") or None, status=status)
    return web.json_response({"runs": [r.model_dump(mode="json") for r in runs]})


async def _get_run(request: web.Request) -> web.Response:
    run = await request.app[RUNS].get(request.match_info["run_id"])
    if run is None:
        raise IngestError(404, "not_found", "no run with that id; list them with GET /api/v1/runs")
    return web.json_response(run.model_dump(mode="json"))


def _decide(
    decision: str, parse: Callable[[type[BaseModel], bytes], Any], read: Callable[[web.Request], Awaitable[bytes]]
) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        args: DecisionBody = parse(DecisionBody, await read(request))
        run_id = request.match_info["run_id"]
        recorded, detail = await request.app[RUNS].decide(run_id, decision, args.actor, args.comment)
        if not recorded:
            status = 404 if detail == "no such run" else 409
            raise IngestError(status, "not_waiting" if status == 409 else "not_found", f"{run_id}: {detail}")
        return web.json_response({"run_id": run_id, "step": detail, "decision": decision, "by": args.actor}, status=202)

    return handle


async def _paused(request: web.Request) -> web.Response:
    return web.json_response({"paused": await request.app[RUNS].paused()})


def _pause(parse: Callable[[type[BaseModel], bytes], Any], read: Callable[[web.Request], Awaitable[bytes]]) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        args: DecisionBody = parse(DecisionBody, await read(request))
        await request.app[RUNS].pause(args.actor)
        return web.json_response({"paused": await request.app[RUNS].paused()})

    return handle


async def _resume(request: web.Request) -> web.Response:
    await request.app[RUNS].resume()
    return web.json_response({"paused": None})


def timeline(incident: Any, results: list[Any], deliveries: list[Any] = ()) -> list[dict[str, Any]]:
    """One list, in time order: the incident's own events, its runbooks' results and its notifications."""
    entries = [
        {"at": e.at.isoformat(), "source": "incident", **e.model_dump(mode="json", exclude={"at"})}
        for e in incident.timeline
    ]
    entries += [
        {"at": r.at.isoformat(), "source": "action", **r.model_dump(mode="json", exclude={"at"})} for r in results
    ]
    entries += [
        {"at": d.at.isoformat(), "source": "notification", **d.model_dump(mode="json", exclude={"at"})}
        for d in deliveries
    ]
    return sorted(entries, key=lambda e: e["at"])


def add_routes(
    app: web.Application,
    runs: RunStore,
    actions: IncidentLog,
    deliveries: IncidentLog,
    find_incident: Callable[[web.Request], Awaitable[Any]],
    parse: Callable[[type[BaseModel], bytes], Any],
    read: Callable[[web.Request], Awaitable[bytes]],
) -> None:
    app[RUNS] = runs
    app[ACTIONS] = actions
    app[DELIVERIES] = deliveries

    async def incident_timeline(request: web.Request) -> web.Response:
        incident = await find_incident(request)
        results = await request.app[ACTIONS].list(incident.id)
        sent = await request.app[DELIVERIES].list(incident.id)
        return web.json_response({"incident_id": incident.id, "timeline": timeline(incident, results, sent)})

    app.router.add_get("/api/v1/runs", _list_runs)
    app.router.add_get("/api/v1/runs/{run_id}", _get_run)
    app.router.add_post("/api/v1/runs/{run_id}/approve", _decide("approve", parse, read))
    app.router.add_post("/api/v1/runs/{run_id}/reject", _decide("reject", parse, read))
    app.router.add_get("/api/v1/runbooks/pause", _paused)
    app.router.add_post("/api/v1/runbooks/pause", _pause(parse, read))
    app.router.add_post("/api/v1/runbooks/resume", _resume)
    app.router.add_get("/api/v1/incidents/{incident_id}/timeline", incident_timeline)
