"""The vocabulary of Firebreak: every HTTP body, Kafka record and Redis value is one of these models."""

from schemas.alert import (
    Alert,
    AlertIn,
    AlertmanagerAlert,
    AlertmanagerWebhook,
    AlertStatus,
    LIMITS,
)
from schemas.silence import ChangeEvent, ChangeKind, Silence
from schemas.incident import (
    SYSTEM_ACTOR,
    AlertEvent,
    CommandAction,
    GroupInput,
    IncidentCommand,
    Tick,
    Incident,
    IncidentAlert,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    TimelineEntry,
)

__all__ = [
    "SYSTEM_ACTOR",
    "Alert",
    "CommandAction",
    "GroupInput",
    "IncidentCommand",
    "Tick",
    "AlertEvent",
    "AlertIn",
    "AlertStatus",
    "AlertmanagerAlert",
    "AlertmanagerWebhook",
    "Incident",
    "IncidentAlert",
    "IncidentEvent",
    "IncidentEventKind",
    "IncidentStatus",
    "LIMITS",
    "TimelineEntry",
]
