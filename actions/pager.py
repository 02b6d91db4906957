"""Paging: escalation timers in Redis, driven by a loop in every worker; one page per incident, then updates.

The stream agent (after the read model took an incident event) only writes to Redis:
- `opened` / `reopened` (not while flapping), or `flapping_ended` of an incident that never paged: an
  escalation starts, level 1 due now (`esc:<incident>`, `esc:due`);
- `page_hold_ended` (an alert that does not resolve by itself joined an incident held by a transient
  pause): a level 1 still held is due now;
- `acknowledged` / `resolved` / `merged` (into another incident, by a person): the escalation stops at once
  (any worker's next look sees it) and an acknowledge / resolve notice is queued for everyone paged
  (`esc:notices`; a merged incident's is a resolve notice: it is over, its alerts page on with the target);
- other changes of a paged incident (alerts joining, severity, probable root, suspects, a merge into it, a
  split off it): one coalesced
  update is queued `notify_update_interval_seconds` ahead (`esc:updates`), so 50 alerts make one page and a
  few updates, not 50 pages.

The loop claims due items atomically (a due item's score moves to now + lease; only one worker's claim
succeeds), pages the level's recipients (actions/delivery.py dedups each by a stable key), then moves the
escalation on only if it is still active. A worker killed between levels leaves the item to be claimed
again after the lease: recipients already paged are skipped by their key, the others paged, and the next
level stays on its schedule, counted from when this level was due.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from actions.channels import Message
from actions.delivery import Deliverer
from actions.loop import PollLoop
from actions.matching import context
from adapters.links import Links
from adapters.logs import context as log_context
from adapters.metrics import ESCALATIONS
from adapters.readmodel import IncidentStore
from correlation.escalation import (
    POLICY_GONE,
    Escalation,
    EscalationStatus,
    Hastened,
    Held,
    Notice,
    Output,
    Page,
    Paging,
    Reaction,
    Recipient,
    Started,
    Stopped,
    Unrouted,
    Update,
    apply,
    begin,
    may_reroute,
    reaction,
    tick,
)
from correlation.topology import Topology
from schemas import Incident, IncidentEvent, IncidentEventKind, IncidentStatus
from schemas.decision import Decision
from schemas.notification import DeliveryKind, NotificationsFile

log = logging.getLogger("firebreak.pager")

# KEYS: the queue, the item's claim marker; ARGV: item, now, the lease's end, this pager's id. A claim sent
# again by the client (its first answer was lost) finds its own score and marker: still its claim. The
# marker only names the last claimer for that moment; the score is the claim.
_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[3]) and redis.call('GET', KEYS[2]) == ARGV[4] then return 1 end
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('SET', KEYS[2], ARGV[4], 'EX', 60)
return 1
"""

_START = """
local current = redis.call('GET', KEYS[1])
if current then
  local d = cjson.decode(current)
  if d['generation'] == ARGV[2] or ARGV[4] == 'if_absent' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
return 1
"""

_ADVANCE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if current == ARGV[1] then return 1 end -- this very advance, sent again
local d = cjson.decode(current)
if d['status'] ~= 'active' or d['generation'] ~= ARGV[2] then redis.call('ZREM', KEYS[2], ARGV[4]); return 0 end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[3] == '' then redis.call('ZREM', KEYS[2], ARGV[4]) else redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4]) end
return 1
"""

_STOP = """
local current = redis.call('GET', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
if not current then return 0 end
local d = cjson.decode(current)
if d['status'] ~= 'active' then return 0 end
d['status'] = 'stopped'
d['stopped_by'] = ARGV[1]
redis.call('SET', KEYS[1], cjson.encode(d))
return 1
"""


# The reactions that need the incident's escalation from Redis (a re-route reads it too).
_READS_STATE = frozenset({Reaction.start, Reaction.start_if_never_paged, Reaction.hasten, Reaction.stop})


def _ts(at: datetime) -> float:
    return at.timestamp()


class Pager(PollLoop):
    name = "pager"

    def __init__(
        self,
        config: NotificationsFile,
        client: aioredis.Redis,
        prefix: str,
        incidents: IncidentStore,
        deliverer: Deliverer,
        links: Links,
        *,
        topology: Topology,
        service_label: str,
        update_interval: float = 30.0,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.5,
        on_escalated: Callable[[IncidentEvent, Incident], Awaitable[Any]] | None = None,
        on_decision: Callable[[list[Decision], str], Awaitable[None]] | None = None,
        muted: Callable[[Incident], Awaitable[str | None]] | None = None,
    ) -> None:
        self.config = config
        self.redis = client
        self.p = prefix
        self.incidents = incidents
        self.deliverer = deliverer
        self.links = links
        self.topology = topology
        self.service_label = service_label
        self.paging = Paging(config, topology, service_label)
        self.update_interval = update_interval
        self.lease = lease_seconds
        super().__init__(poll_seconds)
        self.on_escalated = on_escalated
        self.on_decision = on_decision
        self.muted = muted
        self._claim = client.register_script(_CLAIM)
        self._id = uuid.uuid4().hex  # names this pager's claims (see _CLAIM)
        self._start = client.register_script(_START)
        self._advance = client.register_script(_ADVANCE)
        self._stop = client.register_script(_STOP)

    def _k(self, *parts: str) -> str:
        return self.p + ":".join(parts)

    # -- from the stream: fast Redis writes only --------------------------------------------------------

    async def on_incident_event(self, event: IncidentEvent, incident: Incident) -> None:
        """Act on what the escalation core (correlation/escalation.py `apply`) makes of one incident event.
        The incident's escalation is read from Redis only for an event that may start, hasten, stop or
        re-route it; the writes are conditional (Lua) so a redelivered event or a racing worker changes nothing."""
        what = reaction(event, incident)
        current = await self.state(incident.id) if what in _READS_STATE or may_reroute(event, incident) else None
        _, outputs = apply(current, event, incident, datetime.now(UTC), self.paging)
        await self._act(outputs, incident)

    async def _act(self, outputs: list[Output], incident: Incident) -> bool:
        """Write, count and log what the core returned, in order. The decisions that follow a `Started` are
        logged only if it was written (another worker, or this event's first delivery, may have started it).
        Returns whether an escalation was started."""
        written, started = True, False
        for output in outputs:
            if isinstance(output, Started):
                written = await self._write_escalation(
                    incident, output.state, "if_absent" if output.only_if_absent else "replace", output.outcome
                )
                started |= written
            elif isinstance(output, Unrouted):
                ESCALATIONS.labels("unrouted").inc()
                log.info(
                    "incident %s matches no route and no default policy: nobody is paged",
                    incident.id,
                    extra=log_context(incident_id=incident.id, correlation_key=incident.correlation_key),
                )
            elif isinstance(output, Hastened):  # GRP-24: the decision log has why, from the grouping stage's event
                # A level 1 that went out meanwhile is not paged again: the core leaves a paged escalation alone,
                # and the page's dedup key stops a second send if the two cross.
                if await self._advance(
                    keys=[self._k("esc", incident.id), self._k("esc", "due")],
                    args=[
                        output.state.model_dump_json(),
                        output.state.generation,
                        str(_ts(output.state.due_at)),
                        incident.id,
                    ],
                ):
                    self.wake.set()
            elif isinstance(output, Stopped):
                if await self._stop(
                    keys=[self._k("esc", incident.id), self._k("esc", "due"), self._k("esc", "updates")],
                    args=[output.by, "", incident.id],
                ):
                    ESCALATIONS.labels("stopped").inc()
            elif isinstance(output, Notice) and await self.redis.exists(self._k("esc", incident.id, "paged")):
                notice = json.dumps(
                    {
                        "incident": incident.id,
                        "kind": output.kind.value,
                        "event": output.event_id,
                        "actor": output.actor,
                        "at": output.at.isoformat(),
                    },
                    sort_keys=True,
                )
                await self.redis.zadd(self._k("esc", "notices"), {notice: _ts(datetime.now(UTC))}, nx=True)
                self.wake.set()
            elif isinstance(output, Update) and await self.redis.exists(self._k("esc", incident.id, "paged")):
                due_at = datetime.now(UTC) + timedelta(seconds=self.update_interval)
                await self.redis.zadd(self._k("esc", "updates"), {incident.id: _ts(due_at)}, nx=True)
            elif isinstance(output, Decision) and written:
                await self._log([output], incident.id)
        return started

    async def resume(self, incident: Incident) -> bool:
        """Start again, if absent, the escalation of an open incident nobody acknowledged: after Redis lost
        its data (a flush, a replacement) the incident is rebuilt from Kafka but its escalation is not, and
        its opening event was committed long ago. The generation is the opening's event id, as the stream
        would have used, so the page dedup keys match and the restored delivery markers keep pages already
        sent from going again; levels keep their times, counted from the opening."""
        if incident.status is not IncidentStatus.triggered or incident.flapping:
            return False  # acknowledged: nothing to page; flapping: its end starts the escalation if need be
        opening = next(
            (
                e
                for e in reversed(incident.timeline)
                if e.kind in (IncidentEventKind.opened, IncidentEventKind.reopened)
            ),
            None,
        )
        if opening is None:
            return False
        _, outputs = begin(
            incident,
            incident.severity,
            None,
            f"{incident.id}:{opening.seq}",
            opening.at,
            self.paging,
            only_if_absent=True,
        )
        return await self._act(outputs, incident)

    async def _write_escalation(self, incident: Incident, state: Escalation, mode: str, outcome: str) -> bool:
        """Store a new escalation (`mode` replace, or if_absent), its first level due at `state.due_at`; on
        success count it under `outcome` and wake the loop."""
        created = await self._start(
            keys=[self._k("esc", incident.id), self._k("esc", "due")],
            args=[state.model_dump_json(), state.generation, _ts(state.due_at), mode, incident.id],
        )
        if created:
            ESCALATIONS.labels(outcome).inc()
            self.wake.set()
        return bool(created)

    async def _log(self, decisions: list[Decision], incident_id: str) -> None:
        if self.on_decision is not None:
            await self.on_decision(decisions, incident_id)

    # -- the loop ---------------------------------------------------------------------------------------

    async def poll(self) -> int:
        if self.stopping:
            return 0
        now = datetime.now(UTC)
        started = 0
        for queue, handler in (("due", self._escalate), ("updates", self._update), ("notices", self._notice)):
            key = self._k("esc", queue)
            for raw in await self.redis.zrangebyscore(key, "-inf", _ts(now), start=0, num=50):
                member = raw.decode()
                if (queue, member) in self.tasks:
                    continue
                claim = [member, _ts(now), _ts(now) + self.lease, self._id]
                if not await self._claim(keys=[key, self._k("esc", queue, "claim", member)], args=claim):
                    continue
                self.tasks[(queue, member)] = asyncio.create_task(self._guard(queue, member, handler))
                started += 1
        return started

    async def _guard(self, queue: str, member: str, handler: Callable[[str], Awaitable[None]]) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(queue, member))
        try:
            await handler(member)
        except RedisError as exc:
            log.warning("%s %s: Redis failed (%s); it is taken up again after the lease", queue, member, exc)
        except Exception:
            log.exception("%s %s failed; trying again in 30 s", queue, member)
            try:
                await self.redis.zadd(self._k("esc", queue), {member: _ts(datetime.now(UTC)) + 30}, xx=True)
            except RedisError:
                pass
        finally:
            heartbeat.cancel()
            self.tasks.pop((queue, member), None)

    async def _heartbeat(self, queue: str, member: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.redis.zadd(
                    self._k("esc", queue), {member: _ts(datetime.now(UTC)) + self.lease}, xx=True, gt=True
                )
            except RedisError:
                pass

    # -- escalation -------------------------------------------------------------------------------------

    async def state(self, incident_id: str) -> Escalation | None:
        raw = await self.redis.get(self._k("esc", incident_id))
        return Escalation.model_validate_json(raw) if raw else None

    async def _escalate(self, incident_id: str) -> None:
        state = await self.state(incident_id)
        due_key = self._k("esc", "due")
        if state is None or state.status is not EscalationStatus.active:
            await self.redis.zrem(due_key, incident_id)
            return
        incident = await self.incidents.get(incident_id)
        if incident is None:
            await self.redis.zadd(due_key, {incident_id: _ts(datetime.now(UTC)) + 1})
            return
        if (
            incident.status is IncidentStatus.triggered
            and not incident.alerts
            and datetime.now(UTC) - state.started_at < timedelta(seconds=5)
        ):
            # Opened one event before its first alert joins: a moment's wait makes the page show the alert.
            await self.redis.zadd(due_key, {incident_id: _ts(datetime.now(UTC)) + 0.2})
            return
        muted = (
            await self.muted(incident)
            if self.muted is not None and incident.status is IncidentStatus.triggered
            else None
        )
        following, outputs = tick(state, incident, datetime.now(UTC), muted or None, self.paging)
        for output in outputs:
            if isinstance(output, Stopped):  # acknowledged or resolved before its event reached us, or policy gone
                if output.by == POLICY_GONE:
                    log.error(
                        "incident %s escalates by policy %r, which the notifications file no longer has",
                        incident_id,
                        state.policy,
                    )
                await self._stop(
                    keys=[self._k("esc", incident_id), due_key, self._k("esc", "updates")],
                    args=[output.by, "", incident_id],
                )
            elif isinstance(output, Held):  # looked at again every MUTE_RECHECK_SECONDS; logged once, when it begins
                recheck = str(_ts(output.state.due_at))
                if not output.first:
                    await self.redis.zadd(due_key, {incident_id: float(recheck)}, xx=True)
                    continue
                ESCALATIONS.labels("muted").inc()
                await self._advance(
                    keys=[self._k("esc", incident_id), due_key],
                    args=[output.state.model_dump_json(), state.generation, recheck, incident_id],
                )
            elif isinstance(output, Decision):
                await self._log([output], incident_id)
            elif isinstance(output, Page):
                await self._page(incident, output)
                due_at = "" if following.status is not EscalationStatus.active else str(_ts(following.due_at))
                moved = await self._advance(
                    keys=[self._k("esc", incident_id), due_key],
                    args=[following.model_dump_json(), state.generation, due_at, incident_id],
                )
                ESCALATIONS.labels(f"level_{min(output.level, 5)}").inc()
                if moved and output.level >= 2 and self.on_escalated is not None:
                    await self._escalated(incident, state, output.level)

    async def _page(self, incident: Incident, page: Page) -> None:
        """Deliver one level's page to each recipient, unless the escalation stopped or was replaced meanwhile."""
        state, level, incident_id = page.state, page.level, incident.id
        ctx = context(incident, self.topology, self.service_label)["incident"]

        async def one(r: Recipient) -> None:
            current = await self.state(incident_id)
            if (
                current is None
                or current.status is not EscalationStatus.active
                or current.generation != state.generation
            ):
                return  # acknowledged or resolved meanwhile: stop at once
            key = f"{incident_id}/{state.generation}/r{state.round}/l{level}/{r.channel}/{r.address or '-'}"
            message = Message(
                kind="page",
                dedup_key=key,
                incident=ctx,
                level=level,
                recipient=r.user or r.channel,
                links=self.links.for_incident(incident_id, by=r.user or r.channel),
            )
            delivered = await self.deliverer.deliver(
                key=key,
                kind=DeliveryKind.page,
                incident_id=incident_id,
                channel=r.channel,
                message=message,
                address=r.address,
                user=r.user,
                level=level,
                caused_at=page.caused_at,
            )
            await self.redis.sadd(self._k("esc", incident_id, "paged"), r.model_dump_json())
            if delivered is not None:
                log.info(
                    "paged level %d of incident %s: %s on %s",
                    level,
                    incident_id,
                    r.user or "-",
                    r.channel,
                    extra=log_context(incident_id=incident_id, channel=r.channel, delivery_id=key),
                )

        await asyncio.gather(*(one(r) for r in page.recipients))

    async def _escalated(self, incident: Incident, state: Escalation, level: int) -> None:
        assert self.on_escalated is not None
        event = IncidentEvent(
            event_id=f"{state.generation}/escalated/r{state.round}/l{level}",
            kind=IncidentEventKind.severity_changed,
            incident_id=incident.id,
            correlation_key=incident.correlation_key,
            group_labels=incident.group_labels,
            seq=incident.seq,
            at=datetime.now(UTC),
            severity=incident.severity,
        )
        await self.on_escalated(event, incident)

    # -- updates and notices ----------------------------------------------------------------------------

    async def _paged(self, incident_id: str) -> list[Recipient]:
        members = await self.redis.smembers(self._k("esc", incident_id, "paged"))
        unique = {(r.channel, r.address): r for r in (Recipient.model_validate_json(m) for m in members)}
        return sorted(unique.values(), key=lambda r: (r.channel, r.address))

    async def _update(self, incident_id: str) -> None:
        await self.redis.zrem(self._k("esc", "updates"), incident_id)
        incident = await self.incidents.get(incident_id)
        if incident is None or not incident.is_open or (self.muted is not None and await self.muted(incident)):
            return  # a muted incident's changes wait for the next update after the mute ends
        ctx = context(incident, self.topology, self.service_label)["incident"]
        await asyncio.gather(
            *(
                self._send(DeliveryKind.update, incident_id, f"update/{incident.seq}", r, ctx, None)
                for r in await self._paged(incident_id)
            )
        )

    async def _notice(self, member: str) -> None:
        notice = json.loads(member)
        incident_id = notice["incident"]
        incident = await self.incidents.get(incident_id)
        if incident is not None:
            ctx = context(incident, self.topology, self.service_label)["incident"]
            kind = DeliveryKind.acknowledge if notice["kind"] == "acknowledged" else DeliveryKind.resolve
            await asyncio.gather(
                *(
                    self._send(kind, incident_id, f"{kind.value}/{notice['event']}", r, ctx, notice["actor"])
                    for r in await self._paged(incident_id)
                )
            )
        await self.redis.zrem(self._k("esc", "notices"), member)

    async def _send(
        self, kind: DeliveryKind, incident_id: str, what: str, r: Recipient, ctx: dict[str, Any], actor: str | None
    ) -> None:
        key = f"{incident_id}/{what}/{r.channel}/{r.address or '-'}"
        links = self.links.for_incident(incident_id, by=r.user or r.channel) if kind is DeliveryKind.update else {}
        message = Message(
            kind=kind.value, dedup_key=key, incident=ctx, recipient=r.user or r.channel, actor=actor, links=links
        )
        await self.deliverer.deliver(
            key=key,
            kind=kind,
            incident_id=incident_id,
            channel=r.channel,
            message=message,
            address=r.address,
            user=r.user,
        )
