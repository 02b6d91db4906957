"""Runs in Redis: the executor's coordination record. Kafka's `action-results` holds the history.

Keys (after the settings' prefix):
- `run:<id>`                the Run (JSON), written only by the holder of the current fence
- `run:<id>:lease`          which executor drives the run now (expires unless renewed)
- `run:<id>:fence`          incremented by each new holder; a write carrying an older fence is refused
- `run:<id>:step:<step>`    the durable claim of a step: written (fenced, set-if-absent) *before* it runs,
                            overwritten with the result after. Found `started` by the next holder, it means
                            the outcome was lost in a crash.
- `run:<id>:approval:<step>` the first decision on an approval step
- `runs`, `runs:incident:<id>` indexes; `runs:due` runs to look at, scored by when
- `runbook:<name>:active`   runs holding one of the runbook's concurrency slots
- `runbooks:paused`         the global kill switch

Each write that is not naturally repeatable is one script that recognises its own repeat, because the client
sends a command again after a dead connection (adapters/redis_client.py) and the first attempt may have run:
a create, lease or claim that finds exactly what it would write (the same bytes, the same owner) is the
caller's own, not someone else's. None of them leaves half its keys written if Redis fails in the middle.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from schemas.errors import FirebreakError
from schemas.runbook import Run, RunStatus, StepRecord

_FENCED_SET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i]) end
return 1
"""

# KEYS: fence, the step's record, lease; ARGV: fence, the record, owner, lease milliseconds. The claim also
# holds the lease for the call to come: one that lapsed while Redis was away is taken back (the fence shows
# nobody took the run meanwhile), so no other executor takes the run while the step runs.
_FENCED_CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, false} end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[3] then return {0, false} end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
local existing = redis.call('GET', KEYS[2])
if existing and existing ~= ARGV[2] then return {1, existing} end
redis.call('SET', KEYS[2], ARGV[2])
return {1, false}
"""

# KEYS: known, run, runs, runs:incident:<id>, runs:due; ARGV: the run's JSON, its id, its creation time.
# 1 when created (or when the run there is byte for byte this one: the same create, sent again).
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local existing = redis.call('GET', KEYS[2])
if existing then return existing == ARGV[1] and 1 or 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
return 1
"""

# KEYS: lease, fence; ARGV: owner, milliseconds. The new fence, or the current one when `owner` holds the
# lease already (a lease sent again, or one this executor did not get to release); nil when another holds it.
_LEASE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return redis.call('INCR', KEYS[2]) end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return tonumber(redis.call('GET', KEYS[2]) or '0')
"""

# KEYS: fence, run, runs:due, runbook:<name>:active; ARGV: fence, the finished run's JSON, its id.
_FINISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[3])
redis.call('SREM', KEYS[4], ARGV[3])
return 1
"""

# KEYS: the decision key; ARGV: the decision's JSON. 1 when it is the first (or this very one, sent again).
_FIRST = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing == ARGV[1] and 1 or 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# KEYS: the votes hash; ARGV: the voter, the vote's JSON, seconds to keep the votes.
_VOTE = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return existing == ARGV[2] and 1 or 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

_OWNED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# KEYS: lease, fence; ARGV: owner, milliseconds, fence. Renew the lease, or take it back if it lapsed while
# Redis was away and nobody took the run meanwhile (the fence is still this holder's); 0 once someone did.
_HOLD = """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return 0 end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_SLOT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then redis.call('SADD', KEYS[1], ARGV[1]); return 1 end
return 0
"""


class Fenced(FirebreakError, RuntimeError):
    """Another executor took the run over: this one must stop touching it."""


def _ts(at: datetime) -> float:
    return at.timestamp()


KNOWN_RUN_SECONDS = 30 * 86400  # how long a rebuilt "this run existed" marker keeps a trigger from re-running it


class RunStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.redis = client
        self.p = prefix
        self._fenced_set = client.register_script(_FENCED_SET)
        self._fenced_claim = client.register_script(_FENCED_CLAIM)
        self._owned = client.register_script(_OWNED)
        self._hold = client.register_script(_HOLD)
        self._slot = client.register_script(_SLOT)
        self._create = client.register_script(_CREATE)
        self._lease = client.register_script(_LEASE)
        self._first = client.register_script(_FIRST)
        self._vote = client.register_script(_VOTE)
        self._finish = client.register_script(_FINISH)

    def _k(self, *parts: str) -> str:
        return self.p + ":".join(parts)

    # -- creating and finding runs ----------------------------------------------------------------------

    async def create(self, run: Run) -> bool:
        """Store a new run and schedule it; False (and nothing changes) when it exists already, or existed
        before Redis lost it (`remember`: a redelivered trigger after a rebuild must not run it again)."""
        keys = [
            self._k("run", run.id, "known"),
            self._k("run", run.id),
            self._k("runs"),
            self._k("runs", "incident", run.incident_id),
            self._k("runs", "due"),
        ]
        return bool(await self._create(keys=keys, args=[run.model_dump_json(), run.id, _ts(run.created_at)]))

    async def remember(self, run_id: str) -> None:
        """Note that a run existed (the read-model rebuild calls this for every run on `action-results`)."""
        await self.redis.set(self._k("run", run_id, "known"), "1", ex=KNOWN_RUN_SECONDS)

    async def get(self, run_id: str) -> Run | None:
        raw = await self.redis.get(self._k("run", run_id))
        return Run.model_validate_json(raw) if raw else None

    async def list(self, incident_id: str | None = None, status: str | None = None, limit: int = 100) -> list[Run]:
        if incident_id:
            ids = [i.decode() for i in await self.redis.smembers(self._k("runs", "incident", incident_id))]
        else:
            ids = [
                i.decode()
                for i in await self.redis.zrevrange(self._k("runs"), 0, (limit if not status else 100_000) - 1)
            ]
        if not ids:
            return []
        raws = await self.redis.mget([self._k("run", i) for i in ids])
        runs = [Run.model_validate_json(r) for r in raws if r]
        if status:
            runs = [r for r in runs if r.status.value == status]
        runs.sort(key=lambda r: r.created_at, reverse=True)
        return runs[:limit]

    # -- scheduling -------------------------------------------------------------------------------------

    async def due(self, now: datetime, limit: int) -> list[str]:
        ids = await self.redis.zrangebyscore(self._k("runs", "due"), "-inf", _ts(now), start=0, num=limit)
        return [i.decode() for i in ids]

    async def schedule(self, run_id: str, at: datetime) -> None:
        await self.redis.zadd(self._k("runs", "due"), {run_id: _ts(at)})

    async def unschedule(self, run_id: str) -> None:
        await self.redis.zrem(self._k("runs", "due"), run_id)

    # -- leases and fences ------------------------------------------------------------------------------

    async def lease(self, run_id: str, owner: str, seconds: float) -> int | None:
        """Take the run if nobody else holds it: the new fence (the current one when `owner` holds it already),
        or None."""
        fence = await self._lease(
            keys=[self._k("run", run_id, "lease"), self._k("run", run_id, "fence")], args=[owner, int(seconds * 1000)]
        )
        return None if fence is None else int(fence)

    async def renew(self, run_id: str, owner: str, seconds: float, fence: int) -> bool:
        """Hold the run `seconds` more: renew the lease, or take it back if it lapsed and the fence is still
        `fence`. False once another executor took the run."""
        return bool(
            await self._hold(
                keys=[self._k("run", run_id, "lease"), self._k("run", run_id, "fence")],
                args=[owner, int(seconds * 1000), str(fence)],
            )
        )

    async def release(self, run_id: str, owner: str) -> None:
        await self._owned(keys=[self._k("run", run_id, "lease")], args=[owner])

    async def save(self, run: Run, fence: int, **steps: StepRecord) -> None:
        """Write the run (and step records given) if `fence` is still current; raises Fenced otherwise."""
        keys = [self._k("run", run.id, "fence"), self._k("run", run.id)]
        args: list[Any] = [str(fence), run.model_dump_json()]
        for step_id, record in steps.items():
            keys.append(self._k("run", run.id, "step", step_id))
            args.append(record.model_dump_json())
        if not await self._fenced_set(keys=keys, args=args):
            raise Fenced(f"run {run.id}: fence {fence} is stale")

    async def finish(self, run: Run, fence: int) -> None:
        """Write the finished run, take it off the schedule and free its concurrency slot, all or nothing, if
        `fence` is still current; raises Fenced otherwise. (Done in steps, a failure between them left a slot
        held for good, and a runbook with `concurrency: 1` never ran again.)"""
        keys = [
            self._k("run", run.id, "fence"),
            self._k("run", run.id),
            self._k("runs", "due"),
            self._k("runbook", run.runbook, "active"),
        ]
        if not await self._finish(keys=keys, args=[str(fence), run.model_dump_json(), run.id]):
            raise Fenced(f"run {run.id}: fence {fence} is stale")

    async def forget(self, run_id: str, runbook: str) -> None:
        """A finished run found on the schedule: off it, and its slot free (a finish from before the two were
        one write may have left either)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._k("runs", "due"), run_id)
            pipe.srem(self._k("runbook", runbook, "active"), run_id)
            await pipe.execute()

    async def claim_step(
        self, run_id: str, step_id: str, fence: int, record: StepRecord, *, owner: str, lease_seconds: float
    ) -> StepRecord | None:
        """Mark the step started, durably, before it runs, and hold the run's lease `lease_seconds` for the
        call. Returns the existing record when one is there (the step ran, or was running, under an earlier
        holder) and writes nothing; raises Fenced when another executor holds the run."""
        ok, existing = await self._fenced_claim(
            keys=[
                self._k("run", run_id, "fence"),
                self._k("run", run_id, "step", step_id),
                self._k("run", run_id, "lease"),
            ],
            args=[str(fence), record.model_dump_json(), owner, int(lease_seconds * 1000)],
        )
        if not ok:
            raise Fenced(f"run {run_id}: fence {fence} is stale")
        return StepRecord.model_validate_json(existing) if existing else None

    async def step_record(self, run_id: str, step_id: str) -> StepRecord | None:
        raw = await self.redis.get(self._k("run", run_id, "step", step_id))
        return StepRecord.model_validate_json(raw) if raw else None

    # -- concurrency and the kill switch ----------------------------------------------------------------

    async def take_slot(self, runbook: str, run_id: str, limit: int) -> bool:
        return bool(await self._slot(keys=[self._k("runbook", runbook, "active")], args=[run_id, limit]))

    async def active(self, runbook: str) -> int:
        return int(await self.redis.scard(self._k("runbook", runbook, "active")))

    async def pause(self, by: str) -> None:
        await self.redis.set(self._k("runbooks", "paused"), json.dumps({"by": by, "at": datetime.now(UTC).isoformat()}))

    async def resume(self) -> bool:
        return bool(await self.redis.delete(self._k("runbooks", "paused")))

    async def paused(self) -> dict[str, Any] | None:
        raw = await self.redis.get(self._k("runbooks", "paused"))
        return json.loads(raw) if raw else None

    # -- approvals --------------------------------------------------------------------------------------

    async def decide(self, run_id: str, decision: str, by: str, comment: str = "") -> tuple[bool, str]:
        """Record the first decision on the approval the run waits at; (recorded, why not)."""
        run = await self.get(run_id)
        if run is None:
            return False, "no such run"
        if run.status is not RunStatus.waiting:
            return False, f"the run is {run.status.value}, not waiting for an approval"
        waiting = [sid for sid, rec in run.steps.items() if rec.status.value == "waiting" and rec.action != "wait"]
        if not waiting:
            return False, "the run waits on no approval"
        step_id = waiting[0]
        value = json.dumps({"decision": decision, "by": by, "comment": comment, "at": datetime.now(UTC).isoformat()})
        if run.steps[step_id].action == "approval":  # an approval step: the first decision stands
            if not await self._first(keys=[self._k("run", run_id, "approval", step_id)], args=[value]):
                return False, "the approval was already decided"
        else:  # a risk: high step: one vote per person; the executor counts them
            votes = self._k("run", run_id, "approval", step_id, "votes")
            if not await self._vote(keys=[votes], args=[by, value, 30 * 86400]):
                return False, f"{by} has already decided on this step; another person must"
        await self.schedule(run_id, datetime.now(UTC))
        return True, step_id

    async def votes(self, run_id: str, step_id: str) -> list[dict[str, Any]]:
        """The decisions people gave on a risk: high step, in the order given."""
        raw = await self.redis.hvals(self._k("run", run_id, "approval", step_id, "votes"))
        return sorted((json.loads(v) for v in raw), key=lambda v: v["at"])

    async def decision(self, run_id: str, step_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._k("run", run_id, "approval", step_id))
        return json.loads(raw) if raw else None
