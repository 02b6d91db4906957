"""Alerts as they arrive (Alertmanager webhook v4, generic JSON) and as they travel on the `alerts` topic.

Validation happens here, once, at the edge: label names are non-empty, NFC-normalised and free of control
and invisible characters; label sets and values are bounded; timestamps carry a time zone. Go's zero time
(`0001-01-01T00:00:00Z`), which Alertmanager sends for "unset", reads as absent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
)


@dataclass(frozen=True)
class Limits:
    """Bounds on one alert; beyond them the alert is rejected with a message naming the field."""

    max_labels: int = 64
    max_label_name_chars: int = 256
    max_label_value_chars: int = 4096
    max_annotations: int = 64
    max_annotation_value_chars: int = 16384
    max_url_chars: int = 2048


LIMITS = Limits()


@dataclass(frozen=True)
class TimeBounds:
    """How far from the moment of receipt a time a sender gives may lie; beyond that it is a broken clock or
    a forged alert, refused with a 422 naming the field (docs/guides/sending-alerts.md).

    - `skew`: how far ahead a `startsAt`, or a resolved alert's `endsAt`, may be (a sender's clock running fast);
    - `max_expiry`: how far ahead a firing alert's `endsAt` may be (Alertmanager API v2 senders such as
      Prometheus send `endsAt` a few minutes ahead as the alert's expiry);
    - `max_age`: how far back a `startsAt` or `endsAt` may be: a decade, so an alert firing for months (a
      watchdog) is never refused, while a zero or epoch-zero clock (year 1, 1970) is.
    """

    skew: timedelta = timedelta(hours=1)
    max_expiry: timedelta = timedelta(days=1)
    max_age: timedelta = timedelta(days=3653)


TIME_BOUNDS = TimeBounds()


class AlertStatus(StrEnum):
    firing = "firing"
    resolved = "resolved"


def _is_invisible(char: str) -> bool:
    # Cc: control characters (NUL, newline, ESC); Cf: format characters (zero-width space, BOM, bidi marks).
    return unicodedata.category(char) in ("Cc", "Cf")


def _has_invisible(text: str) -> bool:
    """Whether any character of `text` is invisible (`_is_invisible`). `str.isprintable()` is False for every
    Cc and Cf character (and some others), so a printable text, the usual case, is answered without the
    per-character look-up that made label checks most of the time ingest spent parsing a webhook."""
    return not text.isprintable() and any(_is_invisible(c) for c in text)


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)  # ASCII is already NFC


def _check_pairs(pairs: dict[str, str], what: str, max_items: int, max_value_chars: int) -> dict[str, str]:
    """Shared checks of labels and annotations; `what` is the singular noun used in messages."""
    if len(pairs) > max_items:
        raise ValueError(f"{len(pairs)} {what}s is more than the limit of {max_items}; drop unneeded {what}s")
    clean: dict[str, str] = {}
    for name, value in pairs.items():
        norm = _nfc(name)
        if not norm.strip():
            raise ValueError(f"{what} names must not be empty or blank; give every {what} a name")
        if len(norm) > LIMITS.max_label_name_chars:
            raise ValueError(f"{what} name {norm[:40]!r}... is longer than {LIMITS.max_label_name_chars} characters")
        if _has_invisible(norm):
            raise ValueError(f"{what} name {norm!r} contains control or invisible characters; use printable names")
        if len(value) > max_value_chars:
            raise ValueError(f"{what} {norm!r} has a value longer than {max_value_chars} characters; shorten it")
        if "\x00" in value:
            raise ValueError(f"{what} {norm!r} has a NUL character in its value; remove it")
        if norm in clean:
            raise ValueError(f"{what} name {norm!r} appears twice once normalised to NFC; keep one")
        clean[norm] = _nfc(value)
    return clean


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    if not labels:
        raise ValueError("an alert needs at least one label (for example alertname); labels identify the alert")
    return _check_pairs(labels, "label", LIMITS.max_labels, LIMITS.max_label_value_chars)


def _check_annotations(annotations: dict[str, str]) -> dict[str, str]:
    return _check_pairs(annotations, "annotation", LIMITS.max_annotations, LIMITS.max_annotation_value_chars)


_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


_GO_ZERO_TEXT = re.compile(r"0001-01-01T00:00:00(\.0+)?(Z|[+-]00:00)")
# The shape of an RFC 3339 time; a missing zone is left to pydantic's AwareDatetime, whose message says so.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # times outside [EARLIEST, LATEST) are no clock's reading
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _time_or_unset(value: object) -> object:
    """RFC 3339 strings only (no epoch numbers, not even as strings: pydantic would read "1764522000" as one);
    Go's zero time (exactly, in UTC) and empty strings mean "unset"."""
    if value in ("", None):
        return None
    if isinstance(value, str):
        if _GO_ZERO_TEXT.fullmatch(value):
            return None
        if not _RFC3339.fullmatch(value):
            raise ValueError("times must be RFC 3339 strings with a time zone, e.g. 2026-03-01T09:00:00Z")
        return value
    if isinstance(value, datetime):
        return None if value.tzinfo is not None and value == _GO_ZERO_TIME else value
    raise ValueError("times must be RFC 3339 strings with a time zone, e.g. 2026-03-01T09:00:00Z")


# Strict strings: a number or list where a label value belongs is an error, never silently coerced.
Labels = Annotated[dict[StrictStr, StrictStr], AfterValidator(_check_labels)]
Annotations = Annotated[dict[StrictStr, StrictStr], AfterValidator(_check_annotations)]
OptionalTime = Annotated[AwareDatetime | None, BeforeValidator(_time_or_unset)]


def _plain(value: str) -> str:
    if _has_invisible(value):
        raise ValueError(
            "must not hold control or invisible characters (newlines, NUL, bidi controls); write plain text"
        )
    return value


# A name a person or tool gives (an actor, a silence's author): shown in timelines, audit entries and pages.
PlainName = Annotated[StrictStr, Field(min_length=1, max_length=128), AfterValidator(_plain)]
Url = Annotated[StrictStr, Field(max_length=LIMITS.max_url_chars)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _AlertTimes(_Strict):
    # A field validator (not a model validator) so the error names `endsAt` itself; startsAt is declared
    # before endsAt in every subclass, so it is validated first.
    @field_validator("ends_at", check_fields=False)
    @classmethod
    def _ends_after_start(cls, ends_at: datetime | None, info: ValidationInfo) -> datetime | None:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and ends_at is not None and ends_at < starts_at:
            raise ValueError("endsAt is before startsAt; send endsAt at or after startsAt, or leave it out")
        return ends_at


class AlertIn(_AlertTimes):
    """One alert in the generic JSON format (`POST /api/v1/alerts`).

    Without `status`, the alert is resolved when its `endsAt` is at or before the moment it is received, and
    firing otherwise: Alertmanager's API v2 has no status field and reads alerts this way
    (`types.Alert.Resolved()`); see `status_at`.
    """

    status: AlertStatus = AlertStatus.firing
    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    starts_at: OptionalTime = Field(default=None, alias="startsAt")
    ends_at: OptionalTime = Field(default=None, alias="endsAt")
    generator_url: Url = Field(default="", alias="generatorURL")
    # Accepted for compatibility and ignored: the server always derives its own fingerprint.
    fingerprint: StrictStr | None = Field(default=None, max_length=128)

    def status_at(self, received: datetime) -> AlertStatus:
        """The alert's status as of `received`: the one it gives, else resolved iff `endsAt` <= `received`."""
        if "status" in self.model_fields_set or self.ends_at is None:
            return self.status
        return AlertStatus.resolved if self.ends_at <= received else AlertStatus.firing

    def expiry_at(self, received: datetime) -> datetime | None:
        """When the alert resolves unless its sender sends it again: its `endsAt`, for a firing alert sent without
        status (Alertmanager API v2: an alert whose endsAt has passed is resolved); else None."""
        if "status" in self.model_fields_set or self.ends_at is None or self.ends_at <= received:
            return None
        return self.ends_at


def time_problems(alert: AlertIn, received: datetime, bounds: TimeBounds = TIME_BOUNDS) -> list[tuple[str, str]]:
    """(field, problem) for each time of `alert` outside `bounds` around `received`; empty if all are within.

    A time the sender gives is data, never an instruction: a resolved alert "ending" in year 9999 would make
    every later firing of it look stale, and a `startsAt` far ahead would sort and group wrongly.
    """
    problems = []
    status = alert.status_at(received)
    earliest = received - bounds.max_age
    if alert.starts_at is not None and alert.starts_at > received + bounds.skew:
        problems.append(
            (
                "startsAt",
                f"{alert.starts_at.isoformat()} is more than {bounds.skew} ahead of this server's "
                "clock; fix the sender's clock or leave startsAt out",
            )
        )
    if alert.starts_at is not None and alert.starts_at < earliest:
        problems.append(
            (
                "startsAt",
                f"{alert.starts_at.isoformat()} is more than {bounds.max_age.days} days ago; "
                "fix the sender's clock or leave startsAt out",
            )
        )
    if alert.ends_at is not None:
        ahead = bounds.skew if status is AlertStatus.resolved else bounds.max_expiry
        if alert.ends_at > received + ahead:
            what = (
                "a resolved alert's endsAt"
                if status is AlertStatus.resolved
                else "a firing alert's endsAt (its expiry)"
            )
            problems.append(
                (
                    "endsAt",
                    f"{alert.ends_at.isoformat()} is more than {ahead} ahead of this server's clock, "
                    f"the limit for {what}; fix the sender's clock or leave endsAt out",
                )
            )
        elif alert.ends_at < earliest:
            problems.append(
                (
                    "endsAt",
                    f"{alert.ends_at.isoformat()} is more than {bounds.max_age.days} days ago; "
                    "fix the sender's clock or leave endsAt out",
                )
            )
    return problems


class AlertmanagerAlert(AlertIn):
    """One alert inside an Alertmanager webhook payload (version 4); Alertmanager always sends the status.

    Fields this release does not know are ignored and counted (`unknown_fields`), as webhook receivers do, so a
    newer Alertmanager that adds one does not stop every alert.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    status: AlertStatus

    @property
    def unknown_fields(self) -> list[str]:
        return sorted(self.model_extra or {})


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook payload, version 4. Unknown top-level fields are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    version: Literal["4"]
    status: AlertStatus
    receiver: StrictStr = ""
    group_key: StrictStr = Field(default="", alias="groupKey")
    # Bounded: Alertmanager cannot hold more alerts in one group than this, and a counter must stay exact.
    truncated_alerts: StrictInt = Field(default=0, ge=0, le=10_000_000, alias="truncatedAlerts")
    external_url: Url = Field(default="", alias="externalURL")
    alerts: list[AlertmanagerAlert]


class Alert(_AlertTimes):
    """The canonical alert record on the `alerts` topic, keyed by its fingerprint."""

    fingerprint: str = Field(min_length=1, max_length=128)
    status: AlertStatus
    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: OptionalTime = Field(default=None, alias="endsAt")
    generator_url: Url = Field(default="", alias="generatorURL")
    source: str = Field(min_length=1, max_length=128)
    received_at: AwareDatetime = Field(alias="receivedAt")
    # Alertmanager's webhook said it left this many alerts of the group out (`max_alerts` on its receiver).
    truncated_alerts: int = Field(0, ge=0, alias="truncatedAlerts", exclude_if=lambda v: not v)
    # A firing alert sent without status (Alertmanager API v2's way): it resolves at its endsAt unless a newer copy
    # moves that on (`expiry_of`). An alert whose sender gave its status never expires: the status decides.
    expires_at: AwareDatetime | None = Field(None, alias="expiresAt", exclude_if=lambda v: v is None)


class AlertRelease(_Strict):
    """A record on the `alerts` topic, keyed by the fingerprint, from the grouping stage: a person resolved the
    incident of this still-firing alert (GRP-25), so the dedup stage takes its next copy as news (DUP-10).
    Its JSON starts with `{"type":"release"`, which is how the dedup stage tells it from an `Alert`."""

    type: Literal["release"] = "release"
    fingerprint: str = Field(min_length=1, max_length=128)
    at: AwareDatetime
    incident_id: str = Field(min_length=1, max_length=128)

    @staticmethod
    def is_one(value: bytes) -> bool:
        return value.startswith(b'{"type":"release"')
