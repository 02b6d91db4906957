"""The incident read model in Redis: one JSON document per incident plus two indexes.

Keys (prefix from settings): `incident:<id>` (JSON), `incidents` (sorted set by opened time),
`incidents:open` (set). Writes are optimistic transactions guarded by the incident's `seq`, so a
redelivered or replayed event never applies twice and two writers never interleave.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from correlation.projection import project
from schemas import Incident, IncidentEvent, IncidentStatus

StatusFilter = Literal["all", "open", "triggered", "acknowledged", "resolved"]
STATUS_FILTERS: tuple[str, ...] = ("all", "open", "triggered", "acknowledged", "resolved")


class ApplyResult(StrEnum):
    applied = "applied"
    already_applied = "already_applied"


KEEP_WRITTEN = 2048  # incidents whose last written JSON and model `fold_many` keeps, to skip parsing them again


class IncidentStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        # incident id -> (the JSON this store last wrote for it, that incident): an MGET answering with those
        # very bytes needs no parse (an incident with a hundred alerts and its timeline is tens of KB).
        self._written: OrderedDict[str, tuple[bytes, Incident]] = OrderedDict()

    def _parsed(self, incident_id: str, raw: bytes | None) -> Incident | None:
        if not raw:
            return None
        kept = self._written.get(incident_id)
        if kept is not None and kept[0] == raw:
            return kept[1]
        return Incident.model_validate_json(raw)

    def _wrote(self, incident: Incident, raw: bytes) -> None:
        self._written[incident.id] = (raw, incident)
        self._written.move_to_end(incident.id)
        while len(self._written) > KEEP_WRITTEN:
            self._written.popitem(last=False)

    @property
    def redis(self) -> aioredis.Redis:
        return self._redis

    def _key(self, incident_id: str) -> str:
        return f"{self._prefix}incident:{incident_id}"

    @property
    def _index(self) -> str:
        return f"{self._prefix}incidents"

    @property
    def _open(self) -> str:
        return f"{self._prefix}incidents:open"

    async def apply(self, event: IncidentEvent) -> ApplyResult:
        """Fold one incident event into Redis; idempotent."""
        return (await self.fold(event))[0]

    async def fold(self, event: IncidentEvent) -> tuple[ApplyResult, Incident | None]:
        """`apply`, also returning the incident as Redis now holds it (None if it does not exist), so the
        caller need not read it back."""
        key = self._key(event.incident_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    current = Incident.model_validate_json(raw) if raw else None
                    updated = project(current, event)
                    if updated is None:
                        await pipe.unwatch()
                        return ApplyResult.already_applied, current
                    pipe.multi()
                    pipe.set(key, updated.model_dump_json())
                    pipe.zadd(self._index, {updated.id: updated.opened_at.timestamp()})
                    if updated.is_open:
                        pipe.sadd(self._open, updated.id)
                    else:
                        pipe.srem(self._open, updated.id)
                    await pipe.execute()
                    return ApplyResult.applied, updated
                except WatchError:
                    continue

    async def fold_many(self, events: list[IncidentEvent]) -> list[tuple[ApplyResult, Incident | None]]:
        """`fold` for the events of one record, in order, in three round trips whatever their number: WATCH and
        MGET of every incident they touch, the projections in memory, one MULTI/EXEC writing each changed
        incident once. Retried as a whole if another writer (a rebuild) changed one of them meanwhile."""
        ids = list(dict.fromkeys(event.incident_id for event in events))
        keys = [self._key(i) for i in ids]
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*keys)
                    raws = await pipe.mget(keys)
                    current: dict[str, Incident | None] = {i: self._parsed(i, raw) for i, raw in zip(ids, raws)}
                    changed: set[str] = set()
                    results: list[tuple[ApplyResult, Incident | None]] = []
                    for event in events:
                        updated = project(current[event.incident_id], event)
                        if updated is None:
                            results.append((ApplyResult.already_applied, current[event.incident_id]))
                            continue
                        current[event.incident_id] = updated
                        changed.add(event.incident_id)
                        results.append((ApplyResult.applied, updated))
                    if not changed:
                        await pipe.unwatch()
                        return results
                    pipe.multi()
                    written = []
                    for incident_id in changed:
                        incident = current[incident_id]
                        assert incident is not None
                        raw = incident.model_dump_json().encode()
                        written.append((incident, raw))
                        pipe.set(self._key(incident_id), raw)
                        pipe.zadd(self._index, {incident.id: incident.opened_at.timestamp()})
                        (pipe.sadd if incident.is_open else pipe.srem)(self._open, incident.id)
                    await pipe.execute()
                    for incident, raw in written:
                        self._wrote(incident, raw)
                    return results
                except WatchError:
                    continue

    async def clear(self) -> int:
        """Delete the read model (not silences or other coordination data); returns the incidents removed."""
        ids = await self._redis.zrange(self._index, 0, -1)
        keys = [self._key(i.decode() if isinstance(i, bytes) else i) for i in ids]
        if keys:
            await self._redis.delete(*keys)
        await self._redis.delete(self._index, self._open)
        return len(keys)

    async def problems(self) -> list[dict[str, object]]:
        """Problem records: each problem id with its incidents (newest first), from the incidents that carry one."""
        incidents = await self.list(limit=100_000)
        by_id = {i.id: i for i in incidents}
        carriers: dict[str, list[Incident]] = {}
        for incident in incidents:  # newest first
            if incident.problem_id:
                carriers.setdefault(incident.problem_id, []).append(incident)
        found = []
        for pid, members in carriers.items():
            linked = list(
                dict.fromkeys([*(i.id for i in members), *(other for m in members for other in m.problem_incidents)])
            )
            known = [by_id[i] for i in linked if i in by_id]
            found.append(
                {
                    "id": pid,
                    "title": members[0].title,
                    "correlation_key": members[0].correlation_key,
                    "incidents": linked,
                    "open": sum(1 for i in known if i.is_open),
                    "last_opened_at": members[0].opened_at.isoformat(),
                }
            )
        return sorted(found, key=lambda p: str(p["last_opened_at"]), reverse=True)

    async def get(self, incident_id: str) -> Incident | None:
        raw = await self._redis.get(self._key(incident_id))
        return Incident.model_validate_json(raw) if raw else None

    async def list(self, status: StatusFilter = "all", limit: int = 100) -> list[Incident]:
        """Newest first. `open` means triggered or acknowledged."""
        if status in ("open", IncidentStatus.triggered, IncidentStatus.acknowledged):
            ids = list(await self._redis.smembers(self._open))
        else:
            ids = list(await self._redis.zrevrange(self._index, 0, -1 if status != "all" else limit - 1))
        if not ids:
            return []
        raws = await self._redis.mget([self._key(i.decode() if isinstance(i, bytes) else i) for i in ids])
        incidents = [Incident.model_validate_json(r) for r in raws if r]
        if status == "open":
            incidents = [i for i in incidents if i.is_open]
        elif status != "all":
            incidents = [i for i in incidents if i.status == status]
        incidents.sort(key=lambda i: i.opened_at, reverse=True)
        return incidents[:limit]
