"""1,000 alerts over HTTP through the real Kafka, Faust worker and Redis; then a worker killed and replaced.

The stream: 200 distinct alerts (fingerprints) in 10 groups (services) of 20, each posted 4-5 times,
90 of them resolved (all of groups 0-3, half of group 4); batches alternate between the Alertmanager
webhook and the generic endpoint. Phase two runs while no worker is up, so the replacement worker must
recover the dedup and grouping state from the changelog to get it right.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from schemas import Alert, IncidentEvent
from schemas.batch import alert_records
from schemas.batch import incident_events as unpack_incident_events
from tests.conftest import FIREBREAK, Ingest, Process, Stack, start_worker, wait_until, worker_counts

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)  # recent: ingest bounds sender times
ALERTNAME = "HighErrorRate"


def service(group: int, run: str = RUN) -> str:
    return f"svc{group:02d}-{run}"


def am_alert(group: int, instance: int, status: str = "firing", starts: datetime = T0, run: str = RUN) -> dict:
    return {
        "status": status,
        "labels": {"alertname": ALERTNAME, "service": service(group, run), "instance": f"i{instance:02d}", "run": run},
        "annotations": {"summary": f"errors on {service(group)}"},
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(minutes=10)).isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
    }


def post_all(ingest: Ingest, alerts: list[dict], batch: int = 50) -> int:
    """Post in batches, alternating the two endpoints; every batch must be answered 202."""
    accepted = 0
    for n, start in enumerate(range(0, len(alerts), batch)):
        chunk = alerts[start : start + batch]
        if n % 2 == 0:
            body = {"version": "4", "status": "firing", "receiver": "firebreak", "groupKey": "{}", "alerts": chunk}
            response = ingest.post("/api/v1/alerts/alertmanager", json.dumps(body))
        else:
            response = ingest.post("/api/v1/alerts", json.dumps(chunk))
        assert response.status_code == 202, response.text
        accepted += response.json()["accepted"]
    return accepted


def phase_one() -> tuple[list[dict], list[dict]]:
    """Four rounds of all 200 alerts, a fifth of groups 4..9, then (second list) the resolves of groups 0..3
    and half of group 4.

    The resolves are posted once the firings are in incidents, as a sender would (they come minutes later).
    Kafka orders records within a partition only: posted together onto a backlog, the resolves in one `alerts`
    partition may well be processed before the firings of the same group in another, and an incident that
    resolves with the alerts it has is right to open a new one for firings that arrive after."""
    rng = random.Random(7)
    rounds: list[list[dict]] = [[am_alert(g, i) for g in range(10) for i in range(20)] for _ in range(4)]
    rounds.append([am_alert(g, i) for g in range(5, 10) for i in range(20)] + [am_alert(4, i) for i in range(10, 20)])
    rounds.append(
        [am_alert(g, i, "resolved") for g in range(4) for i in range(20)]
        + [am_alert(4, i, "resolved") for i in range(10)]
    )
    for r in rounds:
        rng.shuffle(r)
    return [a for r in rounds[:-1] for a in r], rounds[-1]


def phase_two() -> list[dict]:
    later = T0 + timedelta(minutes=20)
    return (
        [am_alert(5, i, "resolved") for i in range(20)]  # resolves group 5's open incident
        + [am_alert(6, i) for i in range(20)]  # duplicates: must add nothing
        + [am_alert(7, i) for i in range(20, 30)]  # new alerts join group 7's open incident
        + [am_alert(0, i, starts=later) for i in range(5)]  # group 0 fires again: a new incident
    )


def incident_events(stack: Stack, run: str = RUN) -> list[IncidentEvent]:
    events = [e for v in stack.read_topic("incident-events") for e in unpack_incident_events(v)]
    return [e for e in events if e.group_labels.get("service", "").endswith(run)]


def distinct(events: list[IncidentEvent]) -> dict[str, IncidentEvent]:
    """By event id. A redelivered event may appear twice on the topic, but always with the same content."""
    seen: dict[str, IncidentEvent] = {}
    for e in events:
        assert seen.setdefault(e.event_id, e) == e, f"two different events share the id {e.event_id}"
    return seen


def kinds(events: dict[str, IncidentEvent]) -> Counter[str]:
    return Counter(e.kind.value for e in events.values())


def incidents_in_redis(ingest: Ingest, run: str = RUN) -> list[dict]:
    response = ingest.get("/api/v1/incidents?limit=1000")
    assert response.status_code == 200, response.text
    return [i for i in response.json()["incidents"] if i["group_labels"].get("service", "").endswith(run)]


def by_service(incidents: list[dict], status: str | None = None) -> dict[str, dict]:
    return {i["group_labels"]["service"]: i for i in incidents if status is None or i["status"] == status}


def processed(metrics_port: int) -> Counter[str]:
    """The worker's dedup outcomes so far."""
    return Counter(worker_counts(metrics_port))


def expect(
    stack: Stack,
    ingest: Ingest,
    want: Counter[str],
    want_incidents: int,
    worker: Process,
    timeout: float = 120,
    run: str = RUN,
) -> None:
    def done() -> bool:
        assert worker.popen.poll() is None, f"worker exited:\n{worker.tail()}"
        return (
            kinds(distinct(incident_events(stack, run))) == want
            and len(incidents_in_redis(ingest, run)) == want_incidents
        )

    try:
        wait_until(done, timeout, f"incident events {dict(want)}", interval=1.0)
    except AssertionError:
        got = kinds(distinct(incident_events(stack, run)))
        raise AssertionError(
            f"incident events: want {dict(want)}, got {dict(got)}\nworker log:\n{worker.tail()}"
        ) from None
    # Redis follows the events asynchronously; give the last writes a moment, then compare.
    wait_until(
        lambda: all(
            i["seq"] == max(e.seq for e in distinct(incident_events(stack, run)).values() if e.incident_id == i["id"])
            for i in incidents_in_redis(ingest, run)
        ),
        30,
        "the read model to catch up",
    )


def test_alerts_become_exactly_the_expected_incidents_and_survive_a_worker_kill(stack: Stack, ingest: Ingest):
    started = time.monotonic()
    worker, metrics_port = start_worker(stack, "worker-1")
    try:
        # Other tests of the session may have put alerts on the topic: let the worker take whatever is not
        # committed yet first, so the counts below are this test's alone.
        alerts_before = stack.end_offsets("alerts")
        wait_until(lambda: stack.lag("alerts") == 0, 90, "the worker to catch up with earlier tests' alerts")
        baseline = processed(metrics_port)
        firing, resolving = phase_one()
        first = firing + resolving
        assert len(first) == 1000 and len({json.dumps(a["labels"], sort_keys=True) for a in first}) == 200
        assert post_all(ingest, firing) == 910
        expect(stack, ingest, Counter(opened=10, alert_added=200), 10, worker)
        assert post_all(ingest, resolving) == 90

        # Every accepted alert is durable on the topic, once.
        # (Release records from people's resolves elsewhere in the session share the topic: AlertRelease.)
        records = [a for v in stack.read_topic("alerts") for a in alert_records(v) if isinstance(a, Alert)]
        mine = [r for r in records if r.labels.get("run") == RUN]
        assert len(mine) == 1000 and stack.end_offsets("alerts") - alerts_before <= 1000  # packed: records <= alerts

        expect(stack, ingest, Counter(opened=10, alert_added=200, alert_resolved=90, resolved=4), 10, worker)
        # Every accepted alert accounted for by the dedup stage: 200 new, 90 resolves, the rest duplicates.
        wait_until(
            lambda: sum((processed(metrics_port) - baseline).values()) >= 1000, 30, "the worker to count 1,000 alerts"
        )
        outcomes = processed(metrics_port) - baseline
        # A record the stream hands over again right after the worker joins (faust-streaming's seek race, see
        # adapters/gaps.py) is recognised by its position and counted `redelivered`: it changes nothing.
        outcomes.pop("redelivered", None)
        assert outcomes == Counter(fired=200, resolved=90, duplicate=710)

        incidents = incidents_in_redis(ingest)
        resolved = by_service(incidents, "resolved")
        open_ = by_service(incidents, "triggered")
        assert set(resolved) == {service(g) for g in range(4)}
        assert set(open_) == {service(g) for g in range(4, 10)}
        assert open_[service(4)]["firing_count"] == 10 and open_[service(4)]["alert_count"] == 20
        assert all(open_[service(g)]["firing_count"] == 20 for g in range(5, 10))
        assert all(i["title"] == f"{ALERTNAME} on {i['group_labels']['service']}" for i in incidents)

        # Kill the worker mid-life (no clean shutdown), post more while none runs, start a replacement.
        worker.kill()
        assert post_all(ingest, phase_two()) == 55
        worker, metrics_port = start_worker(stack, "worker-2")

        expect(stack, ingest, Counter(opened=11, alert_added=215, alert_resolved=110, resolved=5), 11, worker)
        incidents = incidents_in_redis(ingest)
        resolved = by_service(incidents, "resolved")
        open_ = by_service(incidents, "triggered")
        assert set(open_) == {service(g) for g in (0, 4, 6, 7, 8, 9)}
        assert service(5) in resolved
        assert open_[service(0)]["alert_count"] == 5
        assert open_[service(6)]["alert_count"] == 20
        assert open_[service(7)]["alert_count"] == 30 and open_[service(7)]["firing_count"] == 30
        # The replacement counted the 55 new alerts; anything it saw again that changed state is marked redelivered,
        # not re-applied. A pure re-send's count reaches the changelog up to 10 s late (adapters/entries.py), so
        # re-sends the killed worker took since its last commit may be counted again as duplicates: counts only,
        # never a state change (RELIABILITY.md, "What a crash can lose").
        counts = processed(metrics_port)
        assert counts["fired"] == 15 and counts["resolved"] == 20 and counts["duplicate"] >= 20

        # The CLI reads the same read model.
        listing = subprocess.run(
            [FIREBREAK, "incidents", "list", "--json", "--limit", "1000"],
            env=stack.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        cli_ids = {i["id"] for i in json.loads(listing.stdout) if i["group_labels"].get("service", "").endswith(RUN)}
        assert cli_ids == {i["id"] for i in incidents}
        # Nothing of this test's was dead-lettered (other modules dead-letter on purpose, e.g. failed pages).
        assert not [v for v in stack.read_topic("dead-letter") if RUN.encode() in v]
    finally:
        worker.stop()
    print(f"\npipeline test wall time: {time.monotonic() - started:.1f} s")


def test_two_workers_one_killed_mid_stream_lose_and_double_nothing(stack: Stack, ingest: Ingest):
    """Two workers share the partitions; one is killed with SIGKILL while alerts stream in. The survivor
    takes its partitions over (state from the changelog) and the result is exactly what one worker makes."""
    run = uuid.uuid4().hex[:8]
    started = time.monotonic()
    first, first_port = start_worker(stack, "worker-a")
    second, second_port = start_worker(stack, "worker-b")
    try:
        firing = [am_alert(g, i, run=run) for _ in range(3) for g in range(20) for i in range(20)]
        random.Random(11).shuffle(firing)
        posted = post_all(ingest, firing[:500])
        # Both workers must be working their share before one dies, or the test proves nothing.
        wait_until(
            lambda: sum(worker_counts(first_port).values()) > 0 and sum(worker_counts(second_port).values()) > 0,
            60,
            "both workers to process alerts",
        )
        first.kill()  # mid-stream, no clean shutdown: its partitions move after the session timeout
        posted += post_all(ingest, firing[500:])
        assert posted == 1200
        expect(stack, ingest, Counter(opened=20, alert_added=400), 20, second, run=run)
        # Resolve half the groups once every firing is in, so no resolve can overtake a firing.
        assert post_all(ingest, [am_alert(g, i, "resolved", run=run) for g in range(10) for i in range(20)]) == 200
        expect(stack, ingest, Counter(opened=20, alert_added=400, alert_resolved=200, resolved=10), 20, second, run=run)

        incidents = incidents_in_redis(ingest, run)
        assert len({i["group_labels"]["service"] for i in incidents}) == 20  # one incident per group, none doubled
        assert sorted(i["status"] for i in incidents) == ["resolved"] * 10 + ["triggered"] * 10
        assert all(i["alert_count"] == 20 for i in incidents)
        # (Release records from people's resolves elsewhere in the session share the topic: AlertRelease.)
        records = [a for v in stack.read_topic("alerts") for a in alert_records(v) if isinstance(a, Alert)]
        assert sum(1 for r in records if r.labels.get("run") == run) == 1400
    finally:
        first.stop()
        second.stop()
    print(f"\ntwo-worker test wall time: {time.monotonic() - started:.1f} s")


def test_records_the_previous_version_wrote_still_flow(stack: Stack, ingest: Ingest):
    """An upgrade must not strand records: single-alert records on `alerts` (key fingerprint, value one Alert)
    and a single people's command on `alert-events`, as the version before packed records wrote them, go
    through the packed stages to incidents in the read model and a resolve."""
    from kafka import KafkaProducer

    from correlation.fingerprint import fingerprint
    from schemas import CommandAction, IncidentCommand

    run = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    for n in range(6):
        labels = {"alertname": ALERTNAME, "service": service(n % 2, run), "instance": f"i{n:02d}", "run": run}
        alert = Alert(
            fingerprint=fingerprint(labels),
            status="firing",
            labels=labels,
            starts_at=now,
            source="old-ingest",
            received_at=now,
        )
        producer.send("alerts", key=alert.fingerprint.encode(), value=alert.model_dump_json(by_alias=True).encode())
    producer.flush()
    worker, _ = start_worker(stack, f"worker-old-records-{run}")
    try:
        expect(stack, ingest, Counter(opened=2, alert_added=6), 2, worker, run=run)  # alert_added for every alert
        incident = next(i for i in incidents_in_redis(ingest, run) if i["group_labels"]["service"] == service(0, run))
        assert incident["alert_count"] == 3
        command = IncidentCommand(
            action=CommandAction.resolve,
            incident_id=incident["id"],
            actor="ana",
            correlation_key=incident["correlation_key"],
            at=datetime.now(UTC),
        )
        producer.send("alert-events", key=command.correlation_key.encode(), value=command.model_dump_json().encode())
        producer.flush()
        wait_until(
            lambda: ingest.get(f"/api/v1/incidents/{incident['id']}").json()["status"] == "resolved",
            60,
            "the old-format command to resolve the incident",
        )
    finally:
        worker.stop()
        producer.close()
