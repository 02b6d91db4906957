"""The runbook executor over the real Redis of the stack, against a real local HTTP server: steps at most
once with competing executors, recovery after a crash, approvals, concurrency limits and the kill switch."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from actions.channels import Channels
from actions.command import CommandPolicy
from actions.executor import Executor
from actions.matching import run_id
from actions.notify import Notifier
from actions.outbound import AllowList, OutboundHttp
from actions.runner import Runner, Services
from adapters.readmodel import IncidentStore
from adapters.run_store import RunStore
from adapters.secrets import Secrets
from correlation.topology import Topology
from schemas import Alert, IncidentEvent, IncidentEventKind
from schemas.notification import WebhookChannel
from schemas.runbook import ActionResult, ResultKind, Runbook, RunStatus, StepRecord, StepStatus
from tests.conftest import Stack
from tests.http_target import Target

pytestmark = pytest.mark.integration


class Rig:
    """Executors sharing one Redis prefix, an incident store and a target server."""

    def __init__(
        self, stack: Stack, target: Target, runbooks: list[dict[str, Any]], client: aioredis.Redis | None = None
    ) -> None:
        self.prefix = f"test-{uuid.uuid4().hex[:8]}:"
        self.client = client if client is not None else aioredis.Redis.from_url(stack.redis_url)
        self.incidents = IncidentStore(self.client, self.prefix)
        self.runs = RunStore(self.client, self.prefix)
        self.target = target
        self.runbooks = [
            Runbook.model_validate({"description": "d", "owner": "team-x", "on": ["opened"], **r}) for r in runbooks
        ]
        self.results: list[ActionResult] = []
        self.executors: list[Executor] = []
        self.audited: list[dict[str, Any]] = []

    def executor(self, lease: float = 1.5) -> Executor:
        async def audit(action: str, target: dict[str, str], actor: str | None, detail: str) -> None:
            self.audited.append({"action": action, "actor": actor, "detail": detail, **target})

        http = OutboundHttp(AllowList.parse([f"127.0.0.1:{self.target.port}"]))
        secrets = Secrets(None, {})
        channels = {"page": WebhookChannel(url=f"{self.target.base}/hooks/page")}

        async def status(incident_id: str) -> str | None:
            found = await self.incidents.get(incident_id)
            return found.status.value if found else None

        services = Services(
            http=http,
            commands=CommandPolicy.parse([]),
            secrets=secrets,
            notifier=Notifier(Channels(channels, http, secrets, None)),
            incident_status=status,
            approval=self.runs.decision,
        )

        async def publish(result: ActionResult) -> None:
            self.results.append(result)

        ex = Executor(
            self.runbooks,
            self.runs,
            self.incidents,
            Runner(services),
            publish,
            topology=Topology(),
            service_label="service",
            page_channel="page",
            lease_seconds=lease,
            poll_seconds=0.05,
            audit=audit,
        )
        self.executors.append(ex)
        return ex

    async def incident(self, name: str) -> tuple[IncidentEvent, Any]:
        now = datetime.now(UTC)
        alert = Alert.model_validate(
            {
                "fingerprint": f"fp-{name}",
                "status": "firing",
                "source": "test",
                "labels": {"alertname": "Down", "service": name},
                "startsAt": now.isoformat(),
                "receivedAt": now.isoformat(),
            }
        )
        opened = IncidentEvent(
            event_id=f"ev-{name}",
            kind=IncidentEventKind.opened,
            incident_id=f"inc-{name}",
            correlation_key=name,
            group_labels={"service": name},
            seq=1,
            at=now,
            severity="critical",
            title=f"{name} down",
            alert=alert,
        )
        added = opened.model_copy(update={"event_id": f"ev-{name}-2", "kind": IncidentEventKind.alert_added, "seq": 2})
        await self.incidents.apply(opened)
        await self.incidents.apply(added)
        return opened, await self.incidents.get(opened.incident_id)

    async def until(
        self, check: Callable[[], Awaitable[bool]], timeout: float = 20, executors: list[Executor] | None = None
    ) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for ex in executors if executors is not None else self.executors:
                await ex.poll()
            if await check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("timed out waiting for the runs")

    async def finished(self, run_id: str) -> bool:
        run = await self.runs.get(run_id)
        return run is not None and run.status.finished

    async def close(self) -> None:
        for ex in self.executors:
            await ex.drain()
            await ex.runner.s.http.close()
        keys = [k async for k in self.client.scan_iter(match=f"{self.prefix}*")]
        if keys:
            await self.client.delete(*keys)
        await self.client.aclose()


def kinds(rig: Rig, run_id: str, step: str | None = None) -> list[str]:
    return [r.kind.value for r in rig.results if r.run_id == run_id and (step is None or r.step_id == step)]


STEPS_ABC = [
    {"id": "a", "http": {"url": "http://127.0.0.1:{port}/a", "json": {"service": "{{ labels.service }}"}}},
    {"id": "b", "wait": {"for": "1s"}},
    {"id": "c", "http": {"url": "http://127.0.0.1:{port}/c"}},
]


def steps(port: int, spec: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import json

    return json.loads(json.dumps(spec).replace("{port}", str(port)))


def _abc(rig_port: int) -> list[dict[str, Any]]:
    return steps(rig_port, STEPS_ABC)


def test_competing_executors_run_each_step_once(stack: Stack) -> None:
    """Three executors poll the same runs; every step runs exactly once and a redelivered trigger adds nothing."""

    async def main() -> None:
        async with Target() as target:
            rig = Rig(stack, target, [{"name": "abc", "steps": _abc(target.port)}])
            try:
                executors = [rig.executor(), rig.executor(), rig.executor()]
                run_ids = []
                for name in ("one", "two", "three"):
                    event, incident = await rig.incident(name)
                    run_ids += await executors[0].trigger(event, incident)
                    assert await executors[1].trigger(event, incident) == []  # the redelivered event finds its run
                assert len(run_ids) == 3

                async def all_done() -> bool:
                    return all([await rig.finished(r) for r in run_ids])

                await rig.until(all_done)
                assert target.hits == {"/a": 3, "/c": 3}
                for rid in run_ids:
                    run = await rig.runs.get(rid)
                    assert run is not None and run.status is RunStatus.succeeded
                    assert kinds(rig, rid, "a").count("step_succeeded") == 1
                    assert kinds(rig, rid, "c").count("step_started") == 1
                assert sorted(b["service"] for b in target.bodies if b) == ["one", "three", "two"]
            finally:
                await rig.close()

    asyncio.run(main())


def test_after_a_crash_finished_steps_stand_and_a_started_one_is_unknown(stack: Stack) -> None:
    """The state a crashed executor leaves (step a done, step c claimed `started`, its lease expired) is resumed:
    a is not repeated, c is reported unknown and not re-run, and its on_failure decides what follows."""

    async def main() -> None:
        async with Target() as target:
            spec = steps(
                target.port,
                [
                    {"id": "a", "http": {"url": "http://127.0.0.1:{port}/a"}},
                    {"id": "c", "http": {"url": "http://127.0.0.1:{port}/c"}, "on_failure": "continue"},
                    {"id": "d", "http": {"url": "http://127.0.0.1:{port}/d"}},
                ],
            )
            rig = Rig(
                stack,
                target,
                [
                    {"name": "crashy", "steps": spec},
                    {"name": "crashy-idem", "steps": [dict(spec[0]), {**spec[1], "idempotent": True}, spec[2]]},
                ],
            )
            try:
                ex = rig.executor()
                event, incident = await rig.incident("svc")
                unsafe, safe = await ex.trigger(event, incident)
                for rid in (unsafe, safe):
                    # What the crashed holder (fence 1) wrote before dying: a done, c claimed, the run running.
                    fence = await rig.runs.lease(rid, "crashed-executor", 0.3)
                    assert fence == 1
                    now = datetime.now(UTC)
                    run = await rig.runs.get(rid)
                    assert run is not None
                    done = StepRecord(
                        status=StepStatus.succeeded,
                        action="http",
                        fence=1,
                        attempts=1,
                        started_at=now,
                        finished_at=now,
                        output={"status": 200},
                    )
                    started = StepRecord(status=StepStatus.started, action="http", fence=1, attempts=1, started_at=now)
                    run = run.model_copy(
                        update={
                            "status": RunStatus.running,
                            "position": 1,
                            "fence": 1,
                            "steps": {"a": done, "c": started},
                        }
                    )
                    await rig.runs.save(run, 1, a=done, c=started)
                await asyncio.sleep(0.4)  # the crashed holder's lease runs out

                async def both_done() -> bool:
                    return await rig.finished(unsafe) and await rig.finished(safe)

                await rig.until(both_done)
                unsafe_run, safe_run = await rig.runs.get(unsafe), await rig.runs.get(safe)
                assert (
                    unsafe_run.steps["c"].status is StepStatus.unknown
                    and "check its effect by hand" in unsafe_run.steps["c"].error
                )
                assert unsafe_run.status is RunStatus.succeeded  # on_failure: continue
                assert safe_run.steps["c"].status is StepStatus.succeeded and safe_run.steps["c"].attempts == 2
                assert target.hits.get("/a") is None  # never repeated
                assert target.hits["/c"] == 1  # only the idempotent one ran again
                assert target.hits["/d"] == 2
                assert "step_unknown" in kinds(rig, unsafe, "c")
            finally:
                await rig.close()

    asyncio.run(main())


def test_a_stale_holder_cannot_write(stack: Stack) -> None:
    """Fencing: after another executor took the run, the old fence's writes are refused."""

    async def main() -> None:
        async with Target() as target:
            rig = Rig(stack, target, [{"name": "f", "steps": _abc(target.port)}])
            try:
                [rid] = await rig.executor().trigger(*(await rig.incident("f")))
                old = await rig.runs.lease(rid, "old", 0.1)
                await asyncio.sleep(0.2)
                new = await rig.runs.lease(rid, "new", 5)
                assert old is not None and new == old + 1
                run = await rig.runs.get(rid)
                from adapters.run_store import Fenced

                with pytest.raises(Fenced):
                    await rig.runs.save(run.model_copy(update={"error": "stale"}), old)
                with pytest.raises(Fenced):
                    await rig.runs.claim_step(
                        rid, "a", old, StepRecord(status=StepStatus.started), owner="old", lease_seconds=5
                    )
                await rig.runs.save(run, new)
            finally:
                await rig.close()

    asyncio.run(main())


def test_approval_gates_pause_and_resume(stack: Stack) -> None:
    """A run waits at its approval (holding no executor), resumes on approve, stops on reject, and takes
    the default when nobody answers in time."""

    async def main() -> None:
        async with Target() as target:
            gate = [
                {
                    "id": "ask",
                    "approval": {"prompt": "restart {{ labels.service }}?", "timeout": "30s", "default": "reject"},
                },
                {"id": "act", "http": {"url": f"{target.base}/act"}},
            ]
            quick = [
                {"id": "ask", "approval": {"prompt": "go?", "timeout": "1s", "default": "approve"}},
                {"id": "act", "http": {"url": f"{target.base}/act-default"}},
            ]
            rig = Rig(
                stack,
                target,
                [
                    {"name": "gate", "match": {"service": ["yes", "no"]}, "steps": gate},
                    {"name": "quick", "match": {"service": ["late"]}, "steps": quick},
                ],
            )
            try:
                ex = rig.executor()
                [yes] = await ex.trigger(*(await rig.incident("yes")))
                [no] = await ex.trigger(*(await rig.incident("no")))
                [late] = await ex.trigger(*(await rig.incident("late")))

                async def waiting() -> bool:
                    return all([(await rig.runs.get(r)).status is RunStatus.waiting for r in (yes, no)])

                await rig.until(waiting)
                await asyncio.sleep(0.3)
                await ex.poll()
                assert target.hits == {} and not ex.tasks  # parked: no executor is tied up
                assert (await rig.runs.decide(yes, "approve", "ana", "ok"))[0]
                assert (await rig.runs.decide(no, "reject", "bo"))[0]
                assert (await rig.runs.decide(no, "approve", "late-comer")) == (
                    False,
                    "the approval was already decided",
                )

                async def all_done() -> bool:
                    return all([await rig.finished(r) for r in (yes, no, late)])

                await rig.until(all_done)
                yes_run, no_run, late_run = [await rig.runs.get(r) for r in (yes, no, late)]
                assert yes_run.status is RunStatus.succeeded and yes_run.steps["ask"].output["by"] == "ana"
                assert no_run.status is RunStatus.failed and no_run.steps["ask"].error == "rejected by bo"
                assert late_run.status is RunStatus.succeeded and late_run.steps["ask"].output["by"] == "timeout"
                assert target.hits == {"/act": 1, "/act-default": 1}
                decided = [r for r in rig.results if r.kind is ResultKind.approval_decided]
                assert sorted(r.actor for r in decided) == ["ana", "bo", "timeout"]
            finally:
                await rig.close()

    asyncio.run(main())


def test_high_risk_steps_wait_for_approval_from_two_people_and_never_run_on_expiry(stack: Stack) -> None:
    """`risk: high`: the low-risk step before it runs at once; the high-risk one pages for approval, is not run
    on one approval, nor on the same person's second, runs once a second person approves, is refused by any
    rejection, and never runs when the request expires. Every decision is in the audit log."""

    async def main() -> None:
        async with Target() as target:
            spec = [
                {"id": "look", "http": {"url": f"{target.base}/look"}},
                {
                    "id": "failover",
                    "risk": "high",
                    "approvals": {"required": 2, "expires": "30s"},
                    "http": {"url": f"{target.base}/failover"},
                },
            ]
            soon = [
                {
                    "id": "failover",
                    "risk": "high",
                    "approvals": {"expires": "1s"},
                    "http": {"url": f"{target.base}/expired"},
                }
            ]
            rig = Rig(
                stack,
                target,
                [
                    {"name": "db-failover", "match": {"service": ["two", "veto"]}, "steps": spec},
                    {"name": "soon", "match": {"service": ["soon"]}, "steps": soon},
                ],
            )
            try:
                ex = rig.executor()
                [two] = await ex.trigger(*(await rig.incident("two")))
                [veto] = await ex.trigger(*(await rig.incident("veto")))
                [soon_run] = await ex.trigger(*(await rig.incident("soon")))

                async def waiting() -> bool:
                    return all([(await rig.runs.get(r)).status is RunStatus.waiting for r in (two, veto)])

                await rig.until(waiting)
                assert target.hits.get("/look") == 2 and "/failover" not in target.hits  # low risk ran, high waits
                asked = [json.dumps(b) for b in target.bodies if "high-risk" in json.dumps(b)]
                assert target.hits.get("/hooks/page") == 3 and len(asked) == 3
                assert any("waits for approval by 2 people" in a for a in asked)

                assert (await rig.runs.decide(two, "approve", "ana"))[0]
                assert (await rig.runs.decide(two, "approve", "ana")) == (
                    False,
                    "ana has already decided on this step; another person must",
                )
                for _ in range(5):
                    await ex.poll()
                    await asyncio.sleep(0.1)
                assert "/failover" not in target.hits  # one approval of two
                assert (await rig.runs.decide(two, "approve", "bo", "checked the replica lag"))[0]
                assert (await rig.runs.decide(veto, "approve", "ana"))[0]
                assert (await rig.runs.decide(veto, "reject", "cy", "primary is recovering"))[0]

                async def all_done() -> bool:
                    return all([await rig.finished(r) for r in (two, veto, soon_run)])

                await rig.until(all_done)
                two_run, veto_run, soon_done = [await rig.runs.get(r) for r in (two, veto, soon_run)]
                assert two_run.status is RunStatus.succeeded and two_run.steps["failover"].approved_by == ["ana", "bo"]
                assert (
                    veto_run.status is RunStatus.failed
                    and "rejected by cy: primary is recovering" in veto_run.steps["failover"].error
                )
                assert soon_done.status is RunStatus.failed and "approval expired" in soon_done.steps["failover"].error
                assert target.hits.get("/failover") == 1 and "/expired" not in target.hits
                audited = [(a["action"], a["run_id"], a["actor"]) for a in rig.audited]
                assert ("risk gate approved", two, "ana, bo") in audited
                assert ("risk gate refused", veto, "cy") in audited and ("risk gate refused", soon_run, None) in audited
                assert sum(1 for a in audited if a[0] == "risk gate requested") == 3
            finally:
                await rig.close()

    asyncio.run(main())


def test_retries_timeouts_and_paging_on_failure(stack: Stack) -> None:
    """Declared retries and timeouts over a real server; a step that still fails pages the runbook's channel."""

    async def main() -> None:
        async with Target() as target:
            target.fail["/flaky"] = [500, 502]
            target.fail["/broken"] = [500] * 10
            spec = [
                {
                    "id": "flaky",
                    "http": {"url": f"{target.base}/flaky"},
                    "retries": {"attempts": 2, "backoff": "100ms"},
                },
                {"id": "skip", "when": "labels.service == 'other'", "http": {"url": f"{target.base}/never"}},
                {
                    "id": "broken",
                    "http": {"url": f"{target.base}/broken"},
                    "retries": {"attempts": 1, "backoff": "100ms"},
                    "on_failure": "page",
                },
                {"id": "after", "http": {"url": f"{target.base}/after"}},
            ]
            rig = Rig(stack, target, [{"name": "retry", "steps": spec}])
            try:
                ex = rig.executor()
                [rid] = await ex.trigger(*(await rig.incident("svc")))
                await rig.until(lambda: rig.finished(rid))
                run = await rig.runs.get(rid)
                assert run.steps["flaky"].status is StepStatus.succeeded and run.steps["flaky"].attempts == 3
                assert run.steps["skip"].status is StepStatus.skipped
                assert run.steps["broken"].status is StepStatus.failed and run.steps["broken"].attempts == 2
                assert run.status is RunStatus.failed and "after" not in run.steps
                assert target.hits == {"/flaky": 3, "/broken": 2, "/hooks/page": 1}
                page = target.bodies[-1]
                assert (
                    page["channel"] == "page"
                    and "step broken failed" in page["text"]
                    and page["dedup_key"].endswith("/broken/page")
                )
            finally:
                await rig.close()

    asyncio.run(main())


def test_concurrency_limit_and_the_kill_switch(stack: Stack) -> None:
    """A runbook with concurrency 1 runs its incidents one after the other; while paused, nothing starts."""

    async def main() -> None:
        async with Target() as target:
            spec = [{"id": "hold", "wait": {"for": "1s"}}, {"id": "act", "http": {"url": f"{target.base}/act"}}]
            rig = Rig(stack, target, [{"name": "single", "concurrency": 1, "steps": spec}])
            try:
                ex = rig.executor()
                await rig.runs.pause("ops")
                first = (await ex.trigger(*(await rig.incident("a"))))[0]
                second = (await ex.trigger(*(await rig.incident("b"))))[0]
                for _ in range(10):
                    assert await ex.poll() == 0
                    await asyncio.sleep(0.05)
                assert (await rig.runs.get(first)).status is RunStatus.pending
                assert await rig.runs.resume()

                async def one_running() -> bool:
                    states = [(await rig.runs.get(r)).status for r in (first, second)]
                    return RunStatus.waiting in states

                await rig.until(one_running)
                states = sorted([(await rig.runs.get(r)).status.value for r in (first, second)])
                assert states == ["pending", "waiting"]  # the second waits for the slot
                assert await rig.runs.active("single") == 1

                async def both() -> bool:
                    return await rig.finished(first) and await rig.finished(second)

                await rig.until(both)
                assert target.hits == {"/act": 2} and await rig.runs.active("single") == 0
            finally:
                await rig.close()

    asyncio.run(main())


class Faults:
    """Which Redis round trip of a client fails, and how: `lost` the command never reaches Redis, `unanswered`
    Redis runs it and the answer is lost, `timed_out` Redis runs it and the client timed out first (a stall:
    redis-py does not retry a timeout). Counted from `arm()` on; each failure closes the connection."""

    def __init__(self) -> None:
        self.count: int | None = None
        self.fail_at = 0
        self.mode = "lost"
        self.failed = 0

    def arm(self, fail_at: int, mode: str) -> None:
        self.count, self.fail_at, self.mode, self.failed = 0, fail_at, mode, 0

    def due(self, mode: str) -> bool:
        if self.count is None or self.mode != mode:
            return False
        self.count += 1
        if self.count != self.fail_at:
            return False
        self.failed += 1
        return True


def flaky_client(url: str, faults: Faults, retries: int) -> aioredis.Redis:
    """A client as adapters/redis_client.connect builds it (`retries` retries on a dead connection), whose
    connections fail the round trip `faults` says."""
    from redis.asyncio.connection import Connection
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from adapters.redis_client import retry_policy

    class FlakyConnection(Connection):
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if faults.due("lost"):
                await self.disconnect()
                raise RedisConnectionError("injected: the connection died before the command was sent")
            await super().send_packed_command(command, check_health)

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            answer = await super().read_response(*args, **kwargs)
            if faults.due("unanswered"):
                await self.disconnect()
                raise RedisConnectionError("injected: the connection died before the answer came back")
            if faults.due("timed_out"):
                await self.disconnect()
                raise RedisTimeoutError("injected: Timeout reading (Redis ran the command after a stall)")
            return answer

    return aioredis.Redis.from_url(
        url, connection_class=FlakyConnection, retry=retry_policy(retries), retry_on_error=[RedisConnectionError]
    )


@pytest.mark.parametrize(
    ("mode", "retries"),
    [("lost", 0), ("unanswered", 3), ("timed_out", 3)],
    ids=["a command lost, no retry", "an answer lost, retried", "a command run after its timeout"],
)
def test_one_redis_failure_anywhere_in_a_run_neither_loses_nor_repeats_a_step(
    stack: Stack, mode: str, retries: int
) -> None:
    """For every Redis round trip of a run's life (its creation, lease, claims, records, finish), that one
    round trip fails once; the run still runs each step exactly once and succeeds.

    `lost` without retries is Redis away for longer than the client retries: the executor stops the visit and
    the next visit resumes it (a failure between a claim and its call used to strand the claim, and the step
    that never ran was reported unknown; one between a run's record and its schedule used to leave a run
    that never became due). `unanswered` with the client's retries is a connection that died after Redis ran
    the command: the command is sent again and must recognise its own first attempt (a lease, a claim, a
    create that find themselves). `timed_out` is a stalled Redis that runs the command after the client
    timed out: the client does not send it again, so the executor must (a claim left behind would make a step
    that never ran unknown)."""
    from redis.exceptions import RedisError

    async def one(target: Target, fail_at: int) -> tuple[int, dict[str, int], RunStatus | None, int, bool]:
        faults = Faults()
        client = flaky_client(stack.redis_url, faults, retries)
        spec = [
            {"id": "a", "http": {"url": f"{target.base}/a"}},
            {"id": "c", "http": {"url": f"{target.base}/c"}},
        ]
        rig = Rig(stack, target, [{"name": "flaky", "steps": spec}], client=client)
        clean = aioredis.Redis.from_url(stack.redis_url)
        runs = RunStore(clean, rig.prefix)  # the test's own reads do not count
        target.hits.clear()
        try:
            ex = rig.executor(lease=0.5)
            event, incident = await rig.incident("svc")
            faults.arm(fail_at, mode)
            rid = run_id(incident.id, "flaky", event.event_id)
            for _ in range(50):  # the stream retries a trigger that met a Redis failure
                try:
                    await ex.trigger(event, incident)
                    break
                except RedisError:
                    await asyncio.sleep(0.05)
            deadline = asyncio.get_running_loop().time() + 15
            while asyncio.get_running_loop().time() < deadline:
                try:
                    await ex.poll()  # the loop around poll() waits out a Redis failure the same way
                except RedisError:
                    pass
                found = await runs.get(rid)
                if found is not None and found.status.finished:
                    break
                await asyncio.sleep(0.05)
            for task in list(ex.tasks.values()):
                await task
            faults.count = None
            run = await runs.get(rid)
            scheduled = await clean.zscore(f"{rig.prefix}runs:due", rid) is not None
            return faults.failed, dict(target.hits), run.status if run else None, await runs.active("flaky"), scheduled
        finally:
            await rig.close()
            await clean.aclose()

    async def main() -> None:
        async with Target() as target:
            # How many round trips a run takes (with no failure), then each of them failing in turn.
            faults_seen: list[int] = []
            fail_at = 1
            while True:
                failed, hits, status, slots, scheduled = await one(target, fail_at)
                if not failed:
                    break  # past the last round trip of the run
                faults_seen.append(fail_at)
                assert (hits, status, slots, scheduled) == ({"/a": 1, "/c": 1}, RunStatus.succeeded, 0, False), (
                    f"round trip {fail_at} failing ({mode}): step calls {hits}, run {status}, "
                    f"{slots} slot(s) still held, still scheduled: {scheduled}"
                )
                fail_at += 1
            assert len(faults_seen) >= 15, "the sweep reached the whole run"

    asyncio.run(main())


def test_a_lease_that_lapsed_while_redis_was_away_is_taken_back_unless_the_run_was_taken(stack: Stack) -> None:
    """Redis away longer than the lease: the lease lapses while a visit still drives the run. Its next claim (or
    its heartbeat) takes the lease back, so no other executor takes the run while the claimed step runs; if
    another executor took the run first, the old holder's claim and heartbeat are refused."""

    async def main() -> None:
        async with Target() as target:
            rig = Rig(stack, target, [{"name": "lapse", "steps": _abc(target.port)}])
            try:
                [rid] = await rig.executor().trigger(*(await rig.incident("lapse")))
                started = StepRecord(status=StepStatus.started, action="http", attempts=1)
                fence = await rig.runs.lease(rid, "a", 0.1)
                assert fence is not None
                await asyncio.sleep(0.2)  # lapsed; nobody took the run
                assert await rig.runs.claim_step(rid, "a", fence, started, owner="a", lease_seconds=5) is None
                assert await rig.runs.lease(rid, "b", 5) is None  # the step's holder has the run again

                await rig.runs.release(rid, "a")
                fence = await rig.runs.lease(rid, "a", 0.1)
                await asyncio.sleep(0.2)
                assert await rig.runs.renew(rid, "a", 5, fence)  # the heartbeat takes it back too
                assert await rig.runs.lease(rid, "b", 5) is None

                await rig.runs.release(rid, "a")
                fence = await rig.runs.lease(rid, "a", 0.1)
                await asyncio.sleep(0.2)
                assert await rig.runs.lease(rid, "b", 5) == fence + 1  # b took the run meanwhile
                assert not await rig.runs.renew(rid, "a", 5, fence)
                from adapters.run_store import Fenced

                with pytest.raises(Fenced):
                    await rig.runs.claim_step(rid, "c", fence, started, owner="a", lease_seconds=5)
            finally:
                await rig.close()

    asyncio.run(main())
