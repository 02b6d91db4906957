"""The vocabulary of Firebreak: every HTTP body, Kafka record and Redis value is one of these models."""

__version__ = "0.1.0"  # the release: the API's OpenAPI `info.version` and `firebreak_build_info`

from schemas.alert import (
    LIMITS,
    Alert,
    AlertIn,
    AlertmanagerAlert,
    AlertmanagerWebhook,
    AlertRelease,
    AlertStatus,
)
from schemas.incident import (
    SYSTEM_ACTOR,
    AlertEvent,
    CommandAction,
    GroupInput,
    Incident,
    IncidentAlert,
    IncidentCommand,
    IncidentEvent,
    IncidentEventKind,
    IncidentStatus,
    Tick,
    TimelineEntry,
)
from schemas.silence import ChangeEvent, ChangeKind, Silence, SilenceFile

__all__ = [
    "LIMITS",
    "SYSTEM_ACTOR",
    "Alert",
    "AlertEvent",
    "AlertIn",
    "AlertRelease",
    "AlertStatus",
    "AlertmanagerAlert",
    "AlertmanagerWebhook",
    "ChangeEvent",
    "ChangeKind",
    "CommandAction",
    "GroupInput",
    "Incident",
    "IncidentAlert",
    "IncidentCommand",
    "IncidentEvent",
    "IncidentEventKind",
    "IncidentStatus",
    "Silence",
    "SilenceFile",
    "Tick",
    "TimelineEntry",
]
