"""Who is on call: rotations in wall-clock time of the schedule's zone, then overrides. Pure.

A daily rotation hands off every day at `handoff`, a weekly one on `handoff_day` at `handoff`, both in local
time: across a daylight-saving change the handoff stays at 09:00 local, so that turn is an hour shorter or
longer in UTC. The first turn starts on the first handoff on or after `start`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.notification import Schedule

_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Shift:
    user: str
    start: datetime
    end: datetime
    override: bool = False


def _anchor(schedule: Schedule) -> datetime:
    rotation = schedule.rotation
    day = rotation.start
    if rotation.type == "weekly":
        day += timedelta(days=(_DAYS.index(rotation.handoff_day.value) - day.weekday()) % 7)
    return datetime.combine(day, rotation.handoff)  # naive local wall-clock time


def _local(naive: datetime, zone: ZoneInfo) -> datetime:
    """A local wall-clock time as a UTC instant (UTC, so arithmetic on it is elapsed time, not wall-clock)."""
    return naive.replace(tzinfo=zone).astimezone(UTC)


def rotation_shift(schedule: Schedule, at: datetime) -> Shift:
    zone = ZoneInfo(schedule.time_zone)
    rotation = schedule.rotation
    period = timedelta(days=1 if rotation.type == "daily" else 7)
    anchor = _anchor(schedule)
    local_now = at.astimezone(zone).replace(tzinfo=None)
    turn = (local_now - anchor) // period
    start = anchor + turn * period
    # The wall clock says the handoff happened, but the zone may disagree for a moment around a change.
    if _local(start, zone) > at:
        turn -= 1
        start -= period
    end = start + period
    return Shift(rotation.members[turn % len(rotation.members)], _local(start, zone), _local(end, zone))


def on_call(schedule: Schedule, at: datetime) -> Shift:
    """Who is on call at `at` (aware), and from when until when that holds."""
    for override in reversed(schedule.overrides):  # a later override wins over an earlier one
        if override.start <= at < override.end:
            return Shift(override.user, override.start, override.end, override=True)
    shift = rotation_shift(schedule, at)
    # An override starting during the shift cuts it short; one that ended during it started it late.
    end = min([shift.end, *(o.start for o in schedule.overrides if at < o.start < shift.end)])
    start = max([shift.start, *(o.end for o in schedule.overrides if shift.start < o.end <= at)])
    return Shift(shift.user, start, end)
