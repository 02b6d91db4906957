"""Signed ack/resolve links from pages (adapters/links.py): the signature is the credential, no bearer token.

`GET /l/{action}/{incident}` answers a small confirmation page (link scanners in mail and chat fetch with
GET, so GET never acts); its form POSTs to the same URL, which checks the signature and expiry and sends
the command exactly as `POST /api/v1/incidents/{id}/ack|resolve` does.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from adapters.links import Links
from schemas import CommandAction, IncidentCommand

LINKS = web.AppKey("links", Links)
PREFIX = "/l/"
VERIFIED = web.RequestKey("link_verified", bool)  # set once the link's signature and expiry checked out
# The page may not be framed (clickjacking its button) nor load anything; its form posts only to itself.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
}

Send = Callable[[IncidentCommand], Awaitable[None]]


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;max-width:40em;margin:2em auto'><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html", headers=PAGE_HEADERS)


def add_routes(
    app: web.Application, links: Links, find_incident: Callable[[str], Awaitable[object]], send: Send
) -> None:
    app[LINKS] = links

    async def _checked(request: web.Request) -> tuple[str, str, str, object] | web.Response:
        """(action, incident id, who, incident) for a genuine, current link to a known incident; else the page to answer."""
        action, incident_id = request.match_info["action"], request.match_info["incident_id"]
        by = request.query.get("by", "")
        problem = links.problem(action, incident_id, by, request.query.get("exp", ""), request.query.get("sig", ""))
        if problem:
            return _page("This link cannot be used", f"<p>{html.escape(problem)}</p>", 403)
        request[VERIFIED] = True
        incident = await find_incident(incident_id)
        if incident is None:
            return _page("No such incident", f"<p>{html.escape(incident_id)} is not known.</p>", 404)
        return action, incident_id, by, incident

    async def confirm(request: web.Request) -> web.Response:
        checked = await _checked(request)
        if isinstance(checked, web.Response):
            return checked
        action, incident_id, by, incident = checked
        verb = "Acknowledge" if action == "ack" else "Resolve"
        title = getattr(incident, "title", incident_id)
        return _page(
            f"{verb} {incident_id}?",
            f"<p>{html.escape(title)} ({html.escape(incident.status.value)})</p>"
            f"<form method='post'><button type='submit'>{verb} as {html.escape(by)}</button></form>",
        )

    async def act(request: web.Request) -> web.Response:
        checked = await _checked(request)
        if isinstance(checked, web.Response):
            return checked
        action, incident_id, by, incident = checked
        if not incident.is_open:
            return _page("Already resolved", f"<p>{html.escape(incident_id)} is resolved; nothing to do.</p>", 409)
        command = IncidentCommand(
            action=CommandAction.acknowledge if action == "ack" else CommandAction.resolve,
            incident_id=incident_id,
            correlation_key=incident.correlation_key,
            actor=by or "link",
            comment="from a signed link",
            at=datetime.now(UTC),
        )
        await send(command)
        done = "acknowledged" if action == "ack" else "resolved"
        return _page(f"{incident_id} {done}", f"<p>Recorded as {html.escape(by)}. Escalation stops.</p>", 202)

    app.router.add_get(PREFIX + "{action}/{incident_id}", confirm)
    app.router.add_post(PREFIX + "{action}/{incident_id}", act)
