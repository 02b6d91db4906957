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
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from actions.channels import Message
from actions.delivery import Deliverer
from correlation.escalation import (
    MUTE_RECHECK_SECONDS,
    Escalation,
    EscalationStatus,
    Reaction,
    Recipient,
    after_paging,
    hastened,
    mute_hold_reason,
    reaction,
    recipients,
    choose_route,
    may_reroute,
    reroute_reason,
    rerouted,
    resolved_in_pause_reason,
    start,
    transient_hold_reason,
)
from adapters.links import Links
from actions.loop import PollLoop
from actions.matching import context
from correlation.topology import Topology
from adapters.logs import context as log_context
from adapters.metrics import ESCALATIONS
from adapters.readmodel import IncidentStore
from schemas import Alert, Incident, IncidentEvent, IncidentEventKind, IncidentStatus
from schemas.decision import Decision, DecisionKind
from schemas.notification import DeliveryKind, NotificationsFile

log = logging.getLogger("firebreak.pager")

_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
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


def _ts(at: datetime) -> float:
    return at.timestamp()


class Pager(PollLoop):
    name = "pager"

    def __init__(self, config: NotificationsFile, client: aioredis.Redis, prefix: str, incidents: IncidentStore,
                 deliverer: Deliverer, links: Links, *, topology: Topology, service_label: str,
                 update_interval: float = 30.0, lease_seconds: float = 30.0, poll_seconds: float = 0.5,
                 on_escalated: Callable[[IncidentEvent, Incident], Awaitable[Any]] | None = None,
                 on_decision: Callable[[list[Decision], str], Awaitable[None]] | None = None,
                 muted: Callable[[Incident], Awaitable[str | None]] | None = None) -> None:
        self.config = config
        self.redis = client
        self.p = prefix
        self.incidents = incidents
        self.deliverer = deliverer
        self.links = links
        self.topology = topology
        self.service_label = service_label
        self.update_interval = update_interval
        self.lease = lease_seconds
        super().__init__(poll_seconds)
        self.on_escalated = on_escalated
        self.on_decision = on_decision
        self.muted = muted
        self._claim = client.register_script(_CLAIM)
        self._start = client.register_script(_START)
        self._advance = client.register_script(_ADVANCE)
        self._stop = client.register_script(_STOP)

    def _k(self, *parts: str) -> str:
        return self.p + ":".join(parts)

    # -- from the stream: fast Redis writes only --------------------------------------------------------

    async def on_incident_event(self, event: IncidentEvent, incident: Incident) -> None:
        await self._reroute(event, incident)
        what = reaction(event, incident)
        if what in (Reaction.start, Reaction.start_if_never_paged):
            await self._begin(event, incident, only_if_absent=what is Reaction.start_if_never_paged)
        elif what is Reaction.hasten:
            await self._hasten(event, incident)
        elif what is Reaction.stop:
            stopped = await self._stop(keys=[self._k("esc", event.incident_id), self._k("esc", "due"), self._k("esc", "updates")],
                                       args=[f"{event.kind.value}:{event.actor}", "", event.incident_id])
            if stopped:
                ESCALATIONS.labels("stopped").inc()
            notice = json.dumps({"incident": event.incident_id, "kind": event.kind.value, "event": event.event_id,
                                 "actor": event.actor, "at": event.at.isoformat()}, sort_keys=True)
            if await self.redis.exists(self._k("esc", event.incident_id, "paged")):
                await self.redis.zadd(self._k("esc", "notices"), {notice: _ts(datetime.now(timezone.utc))}, nx=True)
                self.wake.set()
            elif (event.kind is IncidentEventKind.resolved and incident.page_held_until is not None
                  and event.at < incident.page_held_until):
                await self._decide(DecisionKind.not_paged, incident, event.at, resolved_in_pause_reason(incident))
        elif what is Reaction.update and await self.redis.exists(self._k("esc", event.incident_id, "paged")):
            due = datetime.now(timezone.utc) + timedelta(seconds=self.update_interval)
            await self.redis.zadd(self._k("esc", "updates"), {event.incident_id: _ts(due)}, nx=True)

    async def _reroute(self, event: IncidentEvent, incident: Incident) -> None:
        """A change that routes the incident to a policy that has not paged it starts that escalation now
        (`rerouted`); the one it replaces stops (its generation no longer matches)."""
        if not may_reroute(event, incident):
            return  # nothing to re-route: no Redis read
        current = await self.state(incident.id)
        chosen = rerouted(event, incident, current, self.config, self.topology, self.service_label)
        if chosen is not None:
            await self._write_escalation(incident, start(incident.id, chosen.policy or "", event.event_id, event.at,
                                                         chosen.index, current),
                                         event.at, reroute_reason(event, chosen, current), "replace", "rerouted")

    async def _hasten(self, event: IncidentEvent, incident: Incident) -> None:
        """The transient pause was cut short (GRP-24): level 1, still held, is due now. A level 1 that went
        out meanwhile (its hold ran out) is not paged again: `hastened` leaves a paged escalation alone, and
        the page's dedup key stops a second send if the two cross."""
        state = await self.state(event.incident_id)
        now = datetime.now(timezone.utc)
        sooner = hastened(state, now) if state is not None else None
        if state is None or sooner is None:
            return
        moved = await self._advance(keys=[self._k("esc", event.incident_id), self._k("esc", "due")],
                                    args=[sooner.model_dump_json(), state.generation, str(_ts(now)), event.incident_id])
        if moved:  # the decision log has why, from the grouping stage's event
            self.wake.set()

    async def _begin(self, event: IncidentEvent, incident: Incident, only_if_absent: bool) -> None:
        hold = event.page_held_until if event.kind is IncidentEventKind.opened else None
        await self._start_escalation(incident, event.severity or incident.severity, event.event_id, event.at,
                                     event.alert, only_if_absent, hold)

    async def resume(self, incident: Incident) -> bool:
        """Start again, if absent, the escalation of an open incident nobody acknowledged: after Redis lost
        its data (a flush, a replacement) the incident is rebuilt from Kafka but its escalation is not, and
        its opening event was committed long ago. The generation is the opening's event id, as the stream
        would have used, so the page dedup keys match and the restored delivery markers keep pages already
        sent from going again; levels keep their times, counted from the opening."""
        if incident.status is not IncidentStatus.triggered or incident.flapping:
            return False  # acknowledged: nothing to page; flapping: its end starts the escalation if need be
        opening = next((e for e in reversed(incident.timeline)
                        if e.kind in (IncidentEventKind.opened, IncidentEventKind.reopened)), None)
        if opening is None:
            return False
        return await self._start_escalation(incident, incident.severity, f"{incident.id}:{opening.seq}", opening.at,
                                            None, only_if_absent=True)

    async def _start_escalation(self, incident: Incident, severity: str | None, generation: str, at: datetime,
                                alert: Alert | None, only_if_absent: bool, hold: datetime | None = None) -> bool:
        """Start paging now, or at `hold` (the transient pause): an incident resolved before then pages nobody."""
        chosen = choose_route(incident, severity, self.config, self.topology, self.service_label, alert)
        policy, why = chosen.policy, chosen.why
        if policy is None:
            ESCALATIONS.labels("unrouted").inc()
            log.info("incident %s matches no route and no default policy: nobody is paged", incident.id,
                     extra=log_context(incident_id=incident.id, correlation_key=incident.correlation_key))
            await self._decide(DecisionKind.not_paged, incident, at, why)
            return False
        held_until = hold if hold is not None and hold > datetime.now(timezone.utc) else None
        state = start(incident.id, policy, generation, at, chosen.index)
        if held_until is not None:
            state = state.model_copy(update={"due_at": held_until, "started_at": held_until})
        created = await self._write_escalation(incident, state, at, why, "if_absent" if only_if_absent else "replace",
                                               "started", due=held_until)
        if created and held_until is not None:
            await self._decide(DecisionKind.page_held, incident, at, transient_hold_reason(held_until, incident), level="1")
        return created

    async def _write_escalation(self, incident: Incident, state: Escalation, at: datetime, why: str, mode: str,
                                outcome: str, due: datetime | None = None) -> bool:
        """Store a new escalation (`mode` replace, or if_absent), its first level due at `due` (default now); on
        success count it under `outcome`, wake the loop and log why in the decision log."""
        created = await self._start(keys=[self._k("esc", incident.id), self._k("esc", "due")],
                                    args=[state.model_dump_json(), state.generation,
                                          _ts(due or datetime.now(timezone.utc)), mode, incident.id])
        if created:
            ESCALATIONS.labels(outcome).inc()
            self.wake.set()
            await self._decide(DecisionKind.escalation_started, incident, at, why, escalation_policy=state.policy)
        return bool(created)

    async def _decide(self, kind: DecisionKind, incident: Incident, at: datetime, reason: str, **detail: str) -> None:
        if self.on_decision is not None:
            await self.on_decision([Decision(at=at, kind=kind, incident_id=incident.id, policy=incident.policy, rule="pager",
                                             reason=reason, detail=detail)], incident.id)

    # -- the loop ---------------------------------------------------------------------------------------

    async def poll(self) -> int:
        if self.stopping:
            return 0
        now = datetime.now(timezone.utc)
        started = 0
        for queue, handler in (("due", self._escalate), ("updates", self._update), ("notices", self._notice)):
            key = self._k("esc", queue)
            for raw in await self.redis.zrangebyscore(key, "-inf", _ts(now), start=0, num=50):
                member = raw.decode()
                if (queue, member) in self.tasks:
                    continue
                if not await self._claim(keys=[key], args=[member, _ts(now), _ts(now) + self.lease]):
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
        except Exception:  # noqa: BLE001 - one bad item must not stop paging for the others
            log.exception("%s %s failed; trying again in 30 s", queue, member)
            try:
                await self.redis.zadd(self._k("esc", queue), {member: _ts(datetime.now(timezone.utc)) + 30}, xx=True)
            except RedisError:
                pass
        finally:
            heartbeat.cancel()
            self.tasks.pop((queue, member), None)

    async def _heartbeat(self, queue: str, member: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.redis.zadd(self._k("esc", queue), {member: _ts(datetime.now(timezone.utc)) + self.lease}, xx=True, gt=True)
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
            await self.redis.zadd(due_key, {incident_id: _ts(datetime.now(timezone.utc)) + 1})
            return
        if incident.status is not IncidentStatus.triggered:  # acknowledged or resolved before its event reached us
            await self._stop(keys=[self._k("esc", incident_id), due_key, self._k("esc", "updates")],
                             args=[incident.status.value, "", incident_id])
            return
        if not incident.alerts and datetime.now(timezone.utc) - state.started_at < timedelta(seconds=5):
            # Opened one event before its first alert joins: a moment's wait makes the page show the alert.
            await self.redis.zadd(due_key, {incident_id: _ts(datetime.now(timezone.utc)) + 0.2})
            return
        if state.policy not in self.config.escalation_policies:
            log.error("incident %s escalates by policy %r, which the notifications file no longer has", incident_id, state.policy)
            await self.redis.zrem(due_key, incident_id)
            return
        level = state.level + 1
        if self.muted is not None and (reason := await self.muted(incident)):
            # Held, not skipped: the level pages once the mute ends if the incident still fires; looked at
            # again every MUTE_RECHECK_SECONDS, and logged once, when the hold begins.
            now = datetime.now(timezone.utc)
            recheck = str(_ts(now) + MUTE_RECHECK_SECONDS)
            if state.held_at is not None:
                await self.redis.zadd(due_key, {incident_id: float(recheck)}, xx=True)
                return
            ESCALATIONS.labels("muted").inc()
            held = state.model_copy(update={"held_at": now})
            await self._advance(keys=[self._k("esc", incident_id), due_key],
                                args=[held.model_dump_json(), state.generation, recheck, incident_id])
            await self._decide(DecisionKind.page_held, incident, now, mute_hold_reason(level, reason), level=str(level))
            return
        who = recipients(state, self.config, datetime.now(timezone.utc))
        ctx = context(incident, self.topology, self.service_label)["incident"]
        caused = state.started_at if (state.level, state.round) == (0, 0) else state.due_at

        async def page(r: Recipient) -> None:
            current = await self.state(incident_id)
            if current is None or current.status is not EscalationStatus.active or current.generation != state.generation:
                return  # acknowledged or resolved meanwhile: stop at once
            key = f"{incident_id}/{state.generation}/r{state.round}/l{level}/{r.channel}/{r.address or '-'}"
            message = Message(kind="page", dedup_key=key, incident=ctx, level=level, recipient=r.user or r.channel,
                              links=self.links.for_incident(incident_id, by=r.user or r.channel))
            delivered = await self.deliverer.deliver(key=key, kind=DeliveryKind.page, incident_id=incident_id, channel=r.channel,
                                                     message=message, address=r.address, user=r.user, level=level, caused_at=caused)
            await self.redis.sadd(self._k("esc", incident_id, "paged"), r.model_dump_json())
            if delivered is not None:
                log.info("paged level %d of incident %s: %s on %s", level, incident_id, r.user or "-", r.channel,
                         extra=log_context(incident_id=incident_id, channel=r.channel, delivery_id=key))

        await asyncio.gather(*(page(r) for r in who))
        following = after_paging(state, self.config, datetime.now(timezone.utc))
        due = "" if following.status is not EscalationStatus.active else str(_ts(following.due_at))
        moved = await self._advance(keys=[self._k("esc", incident_id), due_key],
                                    args=[following.model_dump_json(), state.generation, due, incident_id])
        ESCALATIONS.labels(f"level_{min(level, 5)}").inc()
        if moved and level >= 2 and self.on_escalated is not None:
            await self._escalated(incident, state, level)

    async def _escalated(self, incident: Incident, state: Escalation, level: int) -> None:
        assert self.on_escalated is not None
        event = IncidentEvent(event_id=f"{state.generation}/escalated/r{state.round}/l{level}", kind=IncidentEventKind.severity_changed,
                              incident_id=incident.id, correlation_key=incident.correlation_key, group_labels=incident.group_labels,
                              seq=incident.seq, at=datetime.now(timezone.utc), severity=incident.severity)
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
        await asyncio.gather(*(self._send(DeliveryKind.update, incident_id, f"update/{incident.seq}", r, ctx, None)
                               for r in await self._paged(incident_id)))

    async def _notice(self, member: str) -> None:
        notice = json.loads(member)
        incident_id = notice["incident"]
        incident = await self.incidents.get(incident_id)
        if incident is not None:
            ctx = context(incident, self.topology, self.service_label)["incident"]
            kind = DeliveryKind.acknowledge if notice["kind"] == "acknowledged" else DeliveryKind.resolve
            await asyncio.gather(*(self._send(kind, incident_id, f"{kind.value}/{notice['event']}", r, ctx, notice["actor"])
                                   for r in await self._paged(incident_id)))
        await self.redis.zrem(self._k("esc", "notices"), member)

    async def _send(self, kind: DeliveryKind, incident_id: str, what: str, r: Recipient, ctx: dict[str, Any], actor: str | None) -> None:
        key = f"{incident_id}/{what}/{r.channel}/{r.address or '-'}"
        links = self.links.for_incident(incident_id, by=r.user or r.channel) if kind is DeliveryKind.update else {}
        message = Message(kind=kind.value, dedup_key=key, incident=ctx, recipient=r.user or r.channel, actor=actor, links=links)
        await self.deliverer.deliver(key=key, kind=kind, incident_id=incident_id, channel=r.channel, message=message,
                                     address=r.address, user=r.user)
