"""Faults injected while alerts flow, each followed by the ledger check (tests/chaos/harness.py).

The short version runs in CI (`make test`); `make chaos` runs the same faults longer and harder
(FIREBREAK_CHAOS_FULL=1) and writes the table into docs/operations/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis

from tests.chaos.conftest import LEVEL_DELAY, Chaos
from tests.chaos.harness import (
    FULL,
    Load,
    Row,
    account,
    check_pages,
    check_steps,
    read_model_missing,
    receipts,
    settle,
)
from tests.conftest import start_ingest, wait_until

pytestmark = pytest.mark.chaos

RATE = 50 if FULL else 20  # alerts a second of the steady load
SECONDS = 60 if FULL else 24
OUTAGE = 20 if FULL else 8  # Redis down for this long
# Kafka down 20 s in both: long enough for ingest's in-flight batches to time out, which once left its
# idempotent producer broken for good (OutOfOrderSequenceNumber) until it was replaced.
KAFKA_OUTAGE = 20
RECEIVER_DOWN = 30 if FULL else 10
STORM_SECONDS = 5 if FULL else 1
# The packed pipeline's rate: batches of 100 from 8 senders, so ingest packs several requests per record and
# a worker's records each hold many alerts (a kill lands in the middle of one).
PACKED_RATE = 5_000 if FULL else 1_000
PACKED_SECONDS = 60 if FULL else 8
PACKED_LOAD = {"batch": 100, "concurrency": 8, "per_service": 50, "alertname": "Storm"}


def new_run() -> str:
    return "c" + uuid.uuid4().hex[:7]


def ledger(
    chaos: Chaos, fault: str, test: str, run: str, result: dict, settle_s: float = 120, actions: bool = True
) -> Row:
    """The ledger of one load; `actions`: its incidents run the `fix` runbook and page (LoadTest alerts)."""
    accepted = set(result["accepted"])
    row = Row(
        fault,
        f"pytest tests/chaos/test_faults.py::{test}",
        sent=result["sent"],
        accepted=len(accepted),
        answers=result["statuses"],
    )
    seen = settle(chaos.stack, run, accepted, settle_s)
    account(row, accepted, seen, chaos.stack)
    row.readmodel_missing = read_model_missing(chaos.ingest, seen, 60)
    if actions:
        check_steps(row, chaos.fix_log, seen.incident_ids, "/hooks/fix/", 60)
        check_pages(row, chaos.stack, chaos.page_log, seen.incident_ids, "/hooks/page", 90)
    if result["given_up"]:
        row.notes.append(f"{result['given_up']} batch(es) never accepted (the client gave up): not counted as accepted")
    return row


def during_load(
    chaos: Chaos, fault: Callable[[], None], rate: float = RATE, seconds: float = SECONDS, **options: object
) -> tuple[str, dict]:
    """Run the steady load and, a third of the way in, the fault; the load's result once it ends."""
    run = new_run()
    options.setdefault("per_service", 20)  # a new incident every second: runs and pages are in flight at the fault
    load = Load(chaos.ingest, chaos.folder, run, rate, seconds, **options)
    time.sleep(seconds / 3)
    fault()
    return run, load.result()


def test_worker_killed_mid_stream_and_replaced(chaos: Chaos):
    def kill() -> None:
        victim = chaos.workers.pop(0)
        victim.kill(signal.SIGKILL)
        chaos.start_worker(f"chaos-worker-{uuid.uuid4().hex[:4]}")

    run, result = during_load(chaos, kill)
    row = ledger(
        chaos,
        "worker `kill -9` mid-stream, a replacement starts",
        "test_worker_killed_mid_stream_and_replaced",
        run,
        result,
    )
    row.save()
    row.assert_clean()


def test_worker_killed_mid_batch_at_the_packed_rate(chaos: Chaos):
    def kill() -> None:
        victim = chaos.workers.pop(0)
        victim.kill(signal.SIGKILL)
        chaos.start_worker(f"chaos-worker-{uuid.uuid4().hex[:4]}")

    run, result = during_load(chaos, kill, rate=PACKED_RATE, seconds=PACKED_SECONDS, **PACKED_LOAD)
    row = ledger(
        chaos,
        f"worker `kill -9` mid-batch at {PACKED_RATE:,} alerts/s (packed records), a replacement starts",
        "test_worker_killed_mid_batch_at_the_packed_rate",
        run,
        result,
        settle_s=120 + len(result["accepted"]) / 500,
        actions=False,
    )
    row.save()
    row.assert_clean()


def test_broker_restarted_during_group_commit(chaos: Chaos):
    run, result = during_load(
        chaos, outage(chaos, "kafka", KAFKA_OUTAGE), rate=PACKED_RATE, seconds=PACKED_SECONDS, **PACKED_LOAD
    )
    row = ledger(
        chaos,
        f"Kafka broker stopped for {KAFKA_OUTAGE} s during group commit at {PACKED_RATE:,} alerts/s, restarted",
        "test_broker_restarted_during_group_commit",
        run,
        result,
        settle_s=120 + len(result["accepted"]) / 500,
        actions=False,
    )
    row.notes.append(
        f"ingest answered 503 {result['statuses'].get('503', 0)} time(s) during the outage; the client retried"
    )
    row.save()
    assert result["statuses"].get("503", 0) + result["statuses"].get("ConnectionError", 0) > 0, (
        "the outage was not seen"
    )
    row.assert_clean()


def outage(chaos: Chaos, service: str, seconds: float) -> Callable[[], None]:
    """The fault: stop `service` (keeping its data), wait, start it again."""

    def inject() -> None:
        chaos.stack.service("stop", service)
        time.sleep(seconds)
        chaos.stack.service("start", service)

    return inject


def test_kafka_stopped_and_restarted(chaos: Chaos):
    run, result = during_load(chaos, outage(chaos, "kafka", KAFKA_OUTAGE))
    row = ledger(
        chaos, f"Kafka broker stopped for {KAFKA_OUTAGE} s, restarted", "test_kafka_stopped_and_restarted", run, result
    )
    row.notes.append(
        f"ingest answered 503 {result['statuses'].get('503', 0)} time(s) during the outage; the client retried"
    )
    row.save()
    assert result["statuses"].get("503", 0) + result["statuses"].get("ConnectionError", 0) > 0, (
        "the outage was not seen"
    )
    row.assert_clean()


def test_redis_stopped_and_restarted(chaos: Chaos):
    run, result = during_load(chaos, outage(chaos, "redis", OUTAGE))
    row = ledger(
        chaos,
        f"Redis stopped for {OUTAGE} s, restarted (its data kept)",
        "test_redis_stopped_and_restarted",
        run,
        result,
    )
    row.save()
    row.assert_clean()


def test_redis_flushed_and_read_model_rebuilt(chaos: Chaos):
    client = redis.Redis.from_url(chaos.stack.redis_url)
    before = client.zcard("fb:incidents")
    assert before > 0, "earlier scenarios left incidents to lose"

    run, result = during_load(chaos, client.flushall)
    row = ledger(chaos, "Redis flushed (FLUSHALL) mid-stream", "test_redis_flushed_and_read_model_rebuilt", run, result)
    # The read model is rebuilt from incident-events, including the incidents of earlier scenarios.
    wait_until(lambda: client.zcard("fb:incidents") >= before, 60, "the earlier incidents to come back")
    row.notes.append(f"{before} incidents of earlier scenarios rebuilt from incident-events automatically")
    row.save()
    row.assert_clean()


def test_redis_flushed_between_two_escalation_levels(chaos: Chaos):
    """The escalation timer lives in Redis only: a flush after level 1 was paged must neither lose level 2 nor
    page level 1 again. The rebuild restarts escalations of open incidents from their opening event."""
    client = redis.Redis.from_url(chaos.stack.redis_url)
    service = f"esc-{uuid.uuid4().hex[:8]}"
    alert = {
        "labels": {"alertname": "TwoLevels", "service": service, "severity": "critical"},
        "annotations": {},
        "startsAt": datetime.now(UTC).isoformat(),
        "status": "firing",
    }
    response = chaos.ingest.post("/api/v1/alerts", json.dumps([alert]))
    assert response.status_code == 202, response.text

    def pages(level: int) -> list[dict]:
        return [
            r
            for r in receipts(chaos.page_log, "/hooks/page")
            if f"/l{level}/" in r["headers"].get("Idempotency-Key", "") and service in json.dumps(r["body"])
        ]

    wait_until(lambda: pages(1), 30, "level 1 to be paged")
    opened = time.monotonic()
    client.flushall()
    wait_until(lambda: pages(2), LEVEL_DELAY + 60, "level 2 to be paged after the flush")
    assert time.monotonic() - opened >= LEVEL_DELAY - 2, "level 2 came before its delay"
    time.sleep(2)
    assert len(pages(1)) == 1 and len(pages(2)) == 1, (pages(1), pages(2))


def test_worker_joins_and_leaves_during_an_approval(chaos: Chaos):
    run = new_run()
    result = Load(chaos.ingest, chaos.folder, run, 10, 3, alertname="Gated", services=4).result()
    seen = settle(chaos.stack, run, set(result["accepted"]), 60)
    incidents = seen.incident_ids
    assert len(incidents) == 4

    def runs() -> list[dict]:
        found = []
        for incident_id in incidents:
            found += chaos.ingest.get(f"/api/v1/runs?incident={incident_id}").json()["runs"]
        return found

    wait_until(lambda: len([r for r in runs() if r["status"] == "waiting"]) == 4, 60, "four runs waiting for approval")

    def approve(run_ids: list[str]) -> None:
        for run_id in run_ids:
            response = chaos.ingest.post(f"/api/v1/runs/{run_id}/approve", json.dumps({"actor": "chaos"}))
            assert response.status_code == 202, response.text

    waiting = sorted(r["id"] for r in runs())
    steady_run = new_run()
    steady = Load(chaos.ingest, chaos.folder, steady_run, RATE, SECONDS, per_service=20)
    joiner = chaos.start_worker(f"chaos-worker-join-{run}")
    time.sleep(8)  # the group rebalances onto two workers
    approve(waiting[:2])
    time.sleep(3)
    chaos.workers.remove(joiner)
    joiner.stop()  # leaves: the group rebalances back onto one worker
    approve(waiting[2:])
    wait_until(lambda: all(r["status"] in ("succeeded", "failed", "unknown") for r in runs()), 90, "the approved runs")

    row = ledger(
        chaos,
        "a second worker joins, then leaves, while 4 runs wait for approval",
        "test_worker_joins_and_leaves_during_an_approval",
        steady_run,
        steady.result(),
    )
    gated = Row("", "", sent=result["sent"], accepted=len(set(result["accepted"])))
    account(gated, set(result["accepted"]), seen, chaos.stack)
    gated.readmodel_missing = read_model_missing(chaos.ingest, seen, 30)
    check_steps(gated, chaos.fix_log, incidents, "/hooks/gated/", 30)
    for name in (
        "sent",
        "accepted",
        "accounted",
        "lost",
        "duplicated",
        "readmodel_missing",
        "steps_run_twice",
        "steps_missing",
    ):
        setattr(row, name, getattr(row, name) + getattr(gated, name))
    row.notes += gated.notes
    statuses = {r["status"] for r in runs()}
    row.notes.append(
        f"the 4 approved runs finished as {sorted(statuses)}, each approved step ran "
        f"{'once' if not gated.steps_run_twice and not gated.steps_missing else 'NOT once'}"
    )
    row.save()
    assert statuses == {"succeeded"}, runs()
    row.assert_clean()


def test_receiver_down_then_back_and_one_that_never_recovers(chaos: Chaos):
    def receiver_outage() -> None:
        chaos.pager.stop()
        time.sleep(RECEIVER_DOWN)
        chaos.restart_pager()

    doomed = new_run()
    never = Load(chaos.ingest, chaos.folder, doomed, 4, 2, alertname="Unreachable", services=2)
    run, result = during_load(chaos, receiver_outage)
    row = ledger(
        chaos,
        f"page receiver down {RECEIVER_DOWN} s then back; another never recovers",
        "test_receiver_down_then_back_and_one_that_never_recovers",
        run,
        result,
    )

    never_result = never.result()
    seen = settle(chaos.stack, doomed, set(never_result["accepted"]), 60)
    dead = Row("", "")
    check_pages(dead, chaos.stack, chaos.page_log, seen.incident_ids, "/hooks/void", 120)
    reasons = {
        d.get("error")
        for d in (json.loads(v) for v in chaos.stack.read_topic("notifications"))
        if d.get("incident_id") in seen.incident_ids and d.get("status") == "dead_lettered"
    }
    row.pages_dead_lettered = dead.pages_dead_lettered
    row.pages_lost += dead.pages_lost
    row.notes.append(
        f"{dead.pages_dead_lettered} page(s) to the receiver that never recovers dead-lettered, reason: "
        f"{sorted(r for r in reasons if r)[:1]}"
    )
    row.save()
    assert dead.pages_dead_lettered == len(seen.incident_ids) == 2, dead.describe()
    assert all(reasons), "every dead-lettered page names its reason"
    row.assert_clean()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


class PeakRss(threading.Thread):
    """The largest resident set of each process while it runs, sampled every 0.2 s."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.first = {name: rss_kib(pid) for name, pid in pids.items()}
        self.peak = dict(self.first)
        self.running = True

    def run(self) -> None:
        while self.running:
            for name, pid in self.pids.items():
                with contextlib.suppress(OSError, StopIteration):
                    self.peak[name] = max(self.peak[name], rss_kib(pid))
            time.sleep(0.2)

    def summary(self) -> str:
        self.running = False
        return ", ".join(
            f"{name} RSS {self.first[name] // 1024} MiB before, {self.peak[name] // 1024} MiB at peak"
            for name in self.pids
        )


def test_storm_at_three_times_capacity(chaos: Chaos):
    """Ingest sheds with 429 + Retry-After once its in-flight limit is reached; nothing accepted is lost, and
    the worker works through the backlog Kafka holds with bounded memory."""
    shedding = start_ingest(chaos.stack, chaos.folder / "ingest-storm.log", FIREBREAK_INGEST_MAX_INFLIGHT="4")
    wait_until(lambda: shedding.get("/readyz").status_code == 200, 30, "the storm ingest")
    try:
        probe = Load(
            shedding,
            chaos.folder,
            new_run(),
            1_000_000,
            1.5,
            batch=100,
            concurrency=6,
            per_service=50,
            alertname="Storm",
        ).result()
        capacity = len(probe["accepted"]) / probe["seconds"]

        run = new_run()
        memory = PeakRss({"ingest": shedding.process.popen.pid, "worker": chaos.workers[0].popen.pid})
        memory.start()
        # Three generator processes, each offering the measured capacity: one Python process cannot offer 3x.
        loads = [
            Load(
                shedding,
                chaos.folder,
                run,
                capacity,
                STORM_SECONDS,
                batch=100,
                concurrency=8,
                per_service=50,
                alertname="Storm",
                start_index=k * 10_000_000,
            )
            for k in range(3)
        ]
        parts = [load.result() for load in loads]
        result = {
            "sent": sum(p["sent"] for p in parts),
            "accepted": [f for p in parts for f in p["accepted"]],
            "statuses": dict(sum((Counter(p["statuses"]) for p in parts), Counter())),
            "given_up": sum(p["given_up"] for p in parts),
        }
        row = ledger(
            chaos,
            f"storm at 3x the measured ingest capacity ({capacity:,.0f} alerts/s) for {STORM_SECONDS} s",
            "test_storm_at_three_times_capacity",
            run,
            result,
            settle_s=120 + len(result["accepted"]) / 500,
            actions=False,
        )
        shed = result["statuses"].get("429", 0) + result["statuses"].get("503", 0)
        row.notes.append(
            f"{shed} request(s) shed with 429/503 + Retry-After; {memory.summary()}; "
            f"storm alerts neither run runbooks nor page (their route has no policy)"
        )
        row.save()
        assert shed > 0, f"3x capacity was not shed: {result['statuses']}"
        assert memory.peak["ingest"] < memory.first["ingest"] + 200 * 1024, memory.summary()
        row.assert_clean()
    finally:
        shedding.process.stop()


def test_nothing_ran_or_paged_twice_over_the_whole_suite(chaos: Chaos):
    """Each scenario's ledger looks at its own incidents; a later fault can still redo an earlier incident's
    work (a redelivery after a Redis flush once re-paged and re-ran incidents of the first scenario). This
    looks at everything the receivers got during the suite."""
    steps = Counter(r["path"] for r in receipts(chaos.fix_log, "/hooks/"))
    pages = Counter(r["headers"].get("Idempotency-Key") for r in receipts(chaos.page_log, "/hooks/page"))
    row = Row(
        "all of the above, over the whole suite",
        "pytest tests/chaos/test_faults.py::test_nothing_ran_or_paged_twice_over_the_whole_suite",
    )
    row.steps_run_twice = sum(n - 1 for n in steps.values() if n > 1)
    row.pages_received_twice = sum(n - 1 for n in pages.values() if n > 1)
    row.notes.append(f"{len(steps)} runbook steps and {len(pages)} pages and updates received in all")
    row.save()
    assert steps and pages
    assert row.steps_run_twice == 0, [p for p, n in steps.items() if n > 1]
    assert row.pages_received_twice == 0, [k for k, n in pages.items() if n > 1]
