"""`type: pagerduty`: PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/overview).

A page or update is a `trigger`, an acknowledgement `acknowledge`, a resolution `resolve`, all with
`dedup_key` = the incident id, so PagerDuty keeps one alert per incident. A trigger's `payload` has the
title as `summary` (at most 1024 characters), the severity (critical, error, warning or info; otherwise
error), the probable root (or first service) as `source`, and the text, services and level as details.
"""

from __future__ import annotations

import json
from typing import Any

from actions.channels.base import ChannelKind, ChannelLintEnv, Outgoing, Transport, shown
from schemas.channels import PagerDutyChannel


class PagerDuty(ChannelKind[PagerDutyChannel]):
    """Sends `pagerduty` channels; returns `{"status": <HTTP status>, "event_action": ...}`."""

    params = PagerDutyChannel

    async def send(self, out: Transport, spec: PagerDutyChannel, outgoing: Outgoing) -> dict[str, Any]:
        message, rendered = outgoing.message, outgoing.rendered
        incident = message.incident
        action = {"acknowledge": "acknowledge", "resolve": "resolve"}.get(message.kind, "trigger")
        event: dict[str, Any] = {
            "routing_key": out.secret(spec.routing_key),
            "event_action": action,
            "dedup_key": incident["id"],
        }
        if action == "trigger":
            severity = (
                incident.get("severity")
                if incident.get("severity") in ("critical", "error", "warning", "info")
                else "error"
            )
            event["payload"] = {
                "summary": rendered.title[:1024],
                "severity": severity,
                "source": incident.get("probable_root") or next(iter(incident.get("services", [])), "firebreak"),
                "custom_details": {
                    "text": rendered.text,
                    "incident": incident["id"],
                    "services": incident.get("services", []),
                    "level": message.level,
                },
            }
            event["links"] = [
                {"href": url, "text": f"{name.title()} in Firebreak"} for name, url in message.links.items()
            ]
        result = await out.post(spec.url, json.dumps(event).encode(), {}, outgoing.timeout, "PagerDuty")
        return {"status": result.status, "event_action": action}

    def describe(self, spec: PagerDutyChannel) -> str:
        return f"pagerduty: Events API v2 at {spec.url}, routing key {shown(spec.routing_key)}"

    def lint(self, spec: PagerDutyChannel, env: ChannelLintEnv) -> list[str]:
        return [*env.secret_problems(spec.routing_key), *env.host_problems(spec.url)]
