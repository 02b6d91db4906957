"""What a stage remembers of its own recent output, so a redelivered record re-emits exactly what it emitted.

After a crash, Kafka redelivers every record since the last committed offset. The table entry may already
hold the state those records produced (its changelog reached Kafka) while their output did not; so each entry
keeps its recent emissions by input position, and a redelivered position gets its emission back. Outputs of
one key go to one partition in order, so what a crash loses is a suffix of them; every record since the last
commit is redelivered in order, so each getting its own emission back restores that suffix in order.
Emissions are kept for a bounded time and number: far longer than a commit interval (seconds), far smaller
than the state.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

E = TypeVar("E")

RETAIN_FOR = timedelta(minutes=15)
RETAIN_AT_MOST = 16
APPLIED_FOR = timedelta(hours=1)

Emitted = list[tuple[int, datetime, list[E]]]


def replayed(emitted: Emitted[E], position: int) -> list[E]:
    """The output of the input at `position`, if this entry emitted any for it."""
    for pos, _, events in emitted:
        if pos == position:
            return events
    return []


def first_time(applied: dict[str, tuple[int, datetime]], fingerprint: str, source_position: int) -> bool:
    """Whether an event of `fingerprint` caused by the record at `source_position` is new to this entry.

    A redelivered record re-emits its event although downstream may have applied it and later ones already;
    the source position, increasing per fingerprint, tells a repeat from news.
    """
    seen = applied.get(fingerprint)
    return seen is None or source_position > seen[0]


def note_applied(
    applied: dict[str, tuple[int, datetime]], fingerprint: str, source_position: int, now: datetime
) -> dict[str, tuple[int, datetime]]:
    """`applied` with this event recorded, forgetting fingerprints not heard of for an hour."""
    kept = {fp: seen for fp, seen in applied.items() if now - seen[1] <= APPLIED_FOR}
    kept[fingerprint] = (source_position, now)
    return kept


def remember(emitted: Emitted[E], position: int, now: datetime, events: list[E]) -> Emitted[E]:
    """The emissions to keep after emitting `events` for `position` at `now`; more events for a position
    already remembered (say, suspects attached to an opening) join its emission."""
    if not events and (not emitted or now - emitted[0][1] <= RETAIN_FOR):
        return emitted  # nothing to add, nothing expired (the oldest is first): the same list, no copy
    kept = [item for item in emitted if now - item[1] <= RETAIN_FOR]
    if events and kept and kept[-1][0] == position:
        kept[-1] = (position, kept[-1][1], [*kept[-1][2], *events])
    elif events:
        kept.append((position, now, events))
    return kept[-RETAIN_AT_MOST:]
