"""`type: opsgenie`: Opsgenie's Alert API (https://docs.opsgenie.com/docs/alert-api), `Authorization: GenieKey`.

A page or runbook message creates an alert with alias = the incident id (a repeat only counts up on
Opsgenie); an update adds a note, an acknowledgement acknowledges and a resolution closes the alert by alias.
Priority follows the severity: critical P1, error P2, warning P3, else P4.
"""

from __future__ import annotations

import json
from typing import Any

from actions.channels.base import ChannelKind, ChannelLintEnv, Outgoing, Transport, shown
from schemas.channels import OpsgenieChannel


class Opsgenie(ChannelKind[OpsgenieChannel]):
    """Sends `opsgenie` channels; returns `{"status": <HTTP status>}`."""

    params = OpsgenieChannel

    async def send(self, out: Transport, spec: OpsgenieChannel, outgoing: Outgoing) -> dict[str, Any]:
        message, rendered = outgoing.message, outgoing.rendered
        incident = message.incident
        headers = {"Authorization": f"GenieKey {out.secret(spec.api_key)}"}
        alias = incident["id"]
        base = spec.url.rstrip("/")
        if message.kind in ("page", "message"):  # a repeat create with the same alias only counts up on Opsgenie
            priority = {"critical": "P1", "error": "P2", "warning": "P3"}.get(str(incident.get("severity")), "P4")
            body: dict[str, Any] = {
                "message": rendered.title[:130],
                "alias": alias,
                "description": rendered.text[:15000],
                "priority": priority,
                "source": "firebreak",
                "details": {"services": ", ".join(incident.get("services", []))},
            }
            url = base
        elif message.kind == "acknowledge":
            body, url = (
                {"user": message.actor or "firebreak", "note": rendered.title},
                f"{base}/{alias}/acknowledge?identifierType=alias",
            )
        elif message.kind == "resolve":
            body, url = (
                {"user": message.actor or "firebreak", "note": rendered.title},
                f"{base}/{alias}/close?identifierType=alias",
            )
        else:
            body, url = {"note": rendered.text[:25000]}, f"{base}/{alias}/notes?identifierType=alias"
        result = await out.post(url, json.dumps(body).encode(), headers, outgoing.timeout, "Opsgenie")
        return {"status": result.status}

    def describe(self, spec: OpsgenieChannel) -> str:
        return f"opsgenie: Alert API at {spec.url}, key {shown(spec.api_key)}"

    def lint(self, spec: OpsgenieChannel, env: ChannelLintEnv) -> list[str]:
        return [*env.secret_problems(spec.api_key), *env.host_problems(spec.url)]
