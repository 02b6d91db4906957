"""Durations written as Prometheus does: `30s`, `5m`, `1h30m`, `2d` (or a number of seconds)."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """Parse `1h30m`-style text, a number of seconds, or pass a timedelta through."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is text such as 30s, 5m or 1h, not true/false")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return timedelta(0)
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    raise ValueError(f"{value!r} is not a duration; write it as 30s, 5m, 1h30m or 2d")
