"""The vocabulary of Firebreak: every HTTP body, Kafka record and Redis value is one of these models."""

from schemas.alert import (
    Alert,
    AlertIn,
    AlertmanagerAlert,
    AlertmanagerWebhook,
    AlertStatus,
    LIMITS,
)
from schemas.incident import (
    AlertEvent,
    Incident,
    IncidentAlert,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    TimelineEntry,
)

__all__ = [
    "Alert",
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
