"""Durations written as Prometheus does: `30s`, `5m`, `1h30m`, `2d` (or a number of seconds).

Every duration is bounded here, where it is parsed, so that no later `now + duration` can leave datetime's
range: at most MAX_DURATION (366 days, the same horizon a silence may reach ahead). Digits are ASCII only,
as Prometheus's `model.ParseDuration` (Go) reads them: `٣h` is not three hours.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

MAX_DURATION = timedelta(days=366)
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_DIGITS = 12  # a number with more (significant) digits is beyond MAX_DURATION in any unit: never int() it


def _bounded(seconds: float, value: object) -> timedelta:
    """`seconds` as a timedelta; ValueError naming MAX_DURATION if it is longer."""
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(
            f"{value!r} is longer than the maximum duration of {MAX_DURATION.days} days "
            f"({MAX_DURATION.days}d); give a shorter one"
        )
    return timedelta(seconds=seconds)


def parse_duration(value: object) -> timedelta:
    """Parse `1h30m`-style text (units ms, s, m, h, d, w; ASCII digits), a number of seconds, or pass a
    timedelta through, as a timedelta of 0 to MAX_DURATION (366 days).

    Raises ValueError (which pydantic reports against the field) for anything else, naming the fix: text
    that is not a duration, a negative or non-finite number, or a duration longer than MAX_DURATION.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError("a duration cannot be negative")
        return _bounded(value.total_seconds(), value)
    if isinstance(value, bool):
        raise ValueError("a duration is text such as 30s, 5m or 1h, not true/false")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} is not a duration: give a number of seconds from 0, or text such as 5m")
        return _bounded(value, value)
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return timedelta(0)
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            if any(len(n.lstrip("0")) > _MAX_DIGITS for n, _ in parts):
                return _bounded(math.inf, value)
            return _bounded(sum(int(n) * _UNITS[u] for n, u in parts), value)
    raise ValueError(f"{value!r} is not a duration; write it as 30s, 5m, 1h30m or 2d")


def spoken(duration: timedelta) -> str:
    """A duration as configuration writes it: `2m`, `1h30m`, `90s`, `2d` (whole seconds; `0s` for none)."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
