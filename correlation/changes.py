"""Change awareness: which recent changes are suspects for an incident that just opened."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from correlation.topology import Topology
from schemas import ChangeEvent


def suspects(
    changes: Iterable[ChangeEvent], services: Iterable[str], topology: Topology, opened_at: datetime, window: timedelta
) -> list[ChangeEvent]:
    """Changes to the incident's services or anything they depend on, within `window` before it opened; newest first."""
    scope = topology.with_dependencies(services)
    found = [c for c in changes if c.service in scope and opened_at - window <= c.at <= opened_at]
    return sorted(found, key=lambda c: c.at, reverse=True)


def describe(change: ChangeEvent) -> str:
    who = f" by {change.author}" if change.author else ""
    return f"{change.kind.value} of {change.service}{who} at {change.at.isoformat()}: {change.summary}"
