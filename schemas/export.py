"""The published JSON Schemas, generated from the models so they cannot drift."""

from __future__ import annotations

import json

from pydantic import BaseModel

from schemas import (
    Alert,
    AlertEvent,
    AlertIn,
    AlertmanagerWebhook,
    AlertRelease,
    ChangeEvent,
    Incident,
    IncidentCommand,
    IncidentEvent,
    Silence,
)
from schemas.batch import AlertBatch, GroupInputBatch, IncidentEventBatch
from schemas.decision import DecisionBatch
from schemas.notification import Delivery, NotificationsFile
from schemas.runbook import ActionResult, Run, Runbook

PUBLISHED: dict[str, type[BaseModel]] = {
    "alert.json": Alert,
    "alert-batch.json": AlertBatch,  # the `alerts` records ingest writes: alerts of one partition packed together
    "alert-release.json": AlertRelease,  # also on the `alerts` topic: a person resolved the alert's incident (GRP-25)
    "alert-in.json": AlertIn,
    "alertmanager-webhook.json": AlertmanagerWebhook,
    "alert-event.json": AlertEvent,
    "group-input-batch.json": GroupInputBatch,  # the `alert-events` records the dedup stage writes
    "incident-event-batch.json": IncidentEventBatch,  # the `incident-events` records the grouping stage writes
    "incident.json": Incident,
    "incident-event.json": IncidentEvent,
    "incident-command.json": IncidentCommand,
    "silence.json": Silence,
    "change-event.json": ChangeEvent,
    "runbook.json": Runbook,
    "run.json": Run,
    "action-result.json": ActionResult,
    "notifications.json": NotificationsFile,
    "delivery.json": Delivery,
    "decisions.json": DecisionBatch,
}


def render_all() -> dict[str, str]:
    """File name -> JSON Schema text, deterministic."""
    return {
        name: json.dumps(
            model.model_json_schema(by_alias=True, mode="serialization" if model is Incident else "validation"),
            indent=2,
            sort_keys=True,
        )
        + "\n"
        for name, model in PUBLISHED.items()
    }
