"""The stage tables: one pydantic model per key, stored as the model's own JSON bytes.

Faust's default table codec turned every write into `model_dump` plus the standard library's `json.dumps`,
and every read into `model_validate` of a dict: together about 40% of the grouping stage's time (py-spy,
BENCHMARKS.md). Here a write is one `model_dump_json` (pydantic's Rust serializer) and a read of the entry
this worker just wrote costs nothing: the parsed model is kept beside the bytes it came from, and reused
while the table still holds those very bytes (an identity check, so an entry recovered from the changelog
or written by another release is parsed again). The bytes are the same JSON the old codec wrote, so
changelogs written before this change read unchanged.

A change that only counts (a pure re-send: its counter, last-seen time and position move, nothing a decision
reads) need not cost a changelog record: `touch` keeps it in memory, and the key's next real change, or the
first record of its partition `FLUSH_AFTER_SECONDS` later, writes it. What a crash can lose this way is in
RELIABILITY.md ("What a crash can lose").
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from datetime import datetime
from typing import Any, Generic, TypeVar

from faust.streams import _current_event  # the record Faust's table writes take their partition from
from pydantic import BaseModel, ValidationError

from adapters.metrics import STATE_RESETS

log = logging.getLogger("firebreak.worker")

M = TypeVar("M", bound=BaseModel)

KEEP_PARSED = 8192  # parsed entries kept per table; beyond that the least recently used are parsed again
FLUSH_AFTER_SECONDS = (
    10.0  # a counted-only change reaches the changelog at the latest with its partition's first record after this
)


class Entries(Generic[M]):
    """A Faust table seen as `key -> M`. Unreadable entries read as None (the stage starts that key afresh)
    and are counted: one bad entry must not block its key forever."""

    def __init__(self, table: MutableMapping[str, bytes], model: type[M], name: str, keep: int = KEEP_PARSED) -> None:
        self.table = table
        self.model = model
        self.name = name
        self.keep = keep
        self._parsed: OrderedDict[str, tuple[bytes, M]] = OrderedDict()
        # partition -> key -> (entry, monotonic time of its first unwritten change), oldest first
        self._soft: dict[int, OrderedDict[str, tuple[M, float]]] = {}
        self._soft_partition: dict[str, int] = {}

    def get(self, key: str) -> M | None:
        partition = self._soft_partition.get(key)
        if partition is not None:
            return self._soft[partition][key][0]
        raw = self.table.get(key)
        if not raw:
            return None
        kept = self._parsed.get(key)
        if kept is not None and kept[0] is raw:
            self._parsed.move_to_end(key)
            return kept[1]
        entry = self._parse(key, raw)
        if entry is not None:
            self._remember(key, raw, entry)
        return entry

    def set(self, key: str, entry: M, source: Any = None) -> None:
        """Write `entry` to the table, and so its changelog record to the partition of the record being
        handled: Faust's current event, or `source` (a record of the key's partition, when a stage handles
        records of several partitions at once)."""
        partition = self._soft_partition.pop(key, None)
        if partition is not None:
            del self._soft[partition][key]
        raw = entry.model_dump_json().encode()
        if source is None:
            self.table[key] = raw
        else:
            token = _current_event.set(weakref.ref(source))
            try:
                self.table[key] = raw
            finally:
                _current_event.reset(token)
        self._remember(key, raw, entry)

    def touch(self, key: str, entry: M, partition: int) -> None:
        """Keep `entry` for `key` in memory only: a change that only counts (see the module's docstring)."""
        pending = self._soft.setdefault(partition, OrderedDict())
        kept = pending.get(key)
        pending[key] = (entry, kept[1] if kept is not None else time.monotonic())
        self._soft_partition[key] = partition

    def flush_due(self, partition: int, now: float | None = None, source: Any = None) -> int:
        """Write the counted-only changes of `partition` older than FLUSH_AFTER_SECONDS; call it while handling
        a record of that partition (`source`, or Faust's current event). Returns how many."""
        pending = self._soft.get(partition)
        if not pending:
            return 0
        limit = (time.monotonic() if now is None else now) - FLUSH_AFTER_SECONDS
        due = []
        for key, (entry, since) in pending.items():
            if since > limit:
                break
            due.append((key, entry))
        for key, entry in due:
            self.set(key, entry, source)
        return len(due)

    def forget(self, partitions: set[int]) -> None:
        """Drop the counted-only changes of partitions this worker no longer owns (their new owner reads the
        changelog: it loses counters, nothing a decision reads)."""
        for partition in partitions:
            for key in self._soft.pop(partition, {}):
                self._soft_partition.pop(key, None)

    def unwritten(self) -> int:
        """Counted-only changes not written to the changelog yet."""
        return len(self._soft_partition)

    def raw_items(self) -> Iterator[tuple[str, bytes]]:
        return iter(list(self.table.items()))

    def _parse(self, key: str, raw: bytes) -> M | None:
        try:
            return self.model.model_validate_json(raw)
        except ValidationError as exc:
            STATE_RESETS.labels(self.name).inc()
            log.error("table %s entry %r unreadable, starting it afresh: %s", self.name, key, exc.errors()[0]["msg"])
            return None

    def _remember(self, key: str, raw: bytes, entry: M) -> None:
        self._parsed[key] = (raw, entry)
        self._parsed.move_to_end(key)
        while len(self._parsed) > self.keep:
            self._parsed.popitem(last=False)


class DueIndex:
    """When each grouping entry wants a tick, and its partition, without parsing whole entries.

    `partition` and `due_at` are the last two fields of a stored GroupState, so the tail of the bytes from
    the last `"partition":` is a small JSON object of its own. An entry whose tail does not read that way
    (an older field order, a label named `partition`) is parsed whole. Results are kept per key while the
    table holds the same bytes."""

    def __init__(self, entries: Entries) -> None:
        self.entries = entries
        self._known: dict[str, tuple[bytes, int, datetime | None]] = {}

    def due(self, now: datetime) -> Iterator[tuple[str, int]]:
        """(key, partition) of every entry due at `now`."""
        seen = set()
        for key, raw in self.entries.raw_items():
            seen.add(key)
            known = self._known.get(key)
            if known is None or known[0] is not raw:
                known = (raw, *self._read(key, raw))
                self._known[key] = known
            if known[2] is not None and known[2] <= now:
                yield key, known[1]
        if len(self._known) > len(seen):
            for gone in set(self._known) - seen:
                del self._known[gone]

    def _read(self, key: str, raw: bytes) -> tuple[int, datetime | None]:
        if isinstance(raw, bytes):
            start = raw.rfind(b'"partition":')
            try:
                tail = json.loads(b"{" + raw[start:]) if start > 0 else None
            except ValueError:
                tail = None
            if (
                isinstance(tail, dict)
                and isinstance(tail.get("partition"), int)
                and set(tail) <= {"partition", "due_at"}
            ):
                due_at = tail.get("due_at")
                return tail["partition"], datetime.fromisoformat(due_at) if isinstance(due_at, str) else None
        entry = self.entries.get(key)
        if entry is None:
            return 0, None
        return getattr(entry, "partition", 0), getattr(entry, "due_at", None)
