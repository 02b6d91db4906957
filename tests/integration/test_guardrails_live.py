"""Remediation guardrails through the live pipeline: incidents from alerts over HTTP, runs by the worker's
executor against the stand-in API, and the pages a blocked run sends, read from what the stand-in received."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from tests.conftest import Ingest, Process, Stack, Standin, start_ready_worker, wait_until, worker_counts

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def standin(stack: Stack) -> Iterator[Standin]:
    server = Standin(stack, "standin-guardrails.log")
    yield server
    server.stop()


def runbook(name: str, alertname: str, guardrails: str, url: str) -> str:
    return f"""name: {name}
description: Restarts a deployment, within limits.
owner: platform
on: [opened]
match:
  matchers: ['alertname="{alertname}"', 'run="{RUN}"']
page_channel: oncall
guardrails:
  target: "{{{{ labels.deployment }}}}"
{guardrails}
steps:
  - id: restart
    http: {{url: "{url}"}}
"""


@pytest.fixture(scope="module")
def worker(stack: Stack, standin: Standin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, int]]:
    folder = tmp_path_factory.mktemp("guardrails")
    runbooks = folder / "runbooks"
    runbooks.mkdir()
    (runbooks / "limited.yaml").write_text(
        runbook(
            "limited-restart",
            "CrashLoop",
            "  per_target: {max: 3, per: 1h}",
            f"{standin.base}/hooks/restart-{{{{ labels.deployment }}}}",
        )
    )
    (runbooks / "wide.yaml").write_text(
        runbook(
            "wide-restart",
            "NodeDown",
            "  blast_radius: {max_targets: 2, per: 1h}",
            f"{standin.base}/hooks/wide-{{{{ labels.deployment }}}}",
        )
    )
    (runbooks / "fragile.yaml").write_text(
        runbook(
            "fragile-restart",
            "Fragile",
            "  circuit_breaker: {failures: 2, cooldown: 1h}",
            f"{standin.base}/hooks/fragile",
        )
    )
    notifications = folder / "notifications.yaml"
    notifications.write_text(f'channels:\n  oncall: {{type: webhook, url: "{standin.base}/hooks/oncall"}}\n')
    process, port = start_ready_worker(
        stack,
        "worker-guardrails",
        FIREBREAK_RUNBOOKS_DIR=str(runbooks),
        FIREBREAK_NOTIFICATIONS_FILE=str(notifications),
        FIREBREAK_ACTIONS_ALLOWED_HOSTS=f"127.0.0.1:{standin.port}",
        FIREBREAK_EXECUTOR_POLL_SECONDS="0.2",
    )
    yield process, port
    process.stop()


def fire(ingest: Ingest, alertname: str, service: str, deployment: str) -> None:
    alert = {
        "labels": {"alertname": alertname, "service": service, "deployment": deployment, "run": RUN},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    response = ingest.post("/api/v1/alerts", json.dumps([alert]))
    assert response.status_code == 202, response.text


def finished_run(ingest: Ingest, service: str, runbook_name: str) -> dict | None:
    incidents = ingest.get("/api/v1/incidents?limit=1000").json()["incidents"]
    incident = next((i for i in incidents if i["group_labels"].get("service") == service), None)
    if incident is None:
        return None
    runs = ingest.get(f"/api/v1/runs?incident={incident['id']}").json()["runs"]
    run = next((r for r in runs if r["runbook"] == runbook_name), None)
    return run if run is not None and run["status"] in ("succeeded", "failed", "unknown") else None


def one_by_one(ingest: Ingest, alertname: str, runbook_name: str, deployments: list[str]) -> list[dict]:
    """One incident per deployment, each run finished before the next fires: the order is the test's."""
    runs = []
    for n, deployment in enumerate(deployments):
        service = f"{alertname.lower()}-{n}-{RUN}"
        fire(ingest, alertname, service, deployment)
        wait_until(
            lambda: finished_run(ingest, service, runbook_name) is not None, 60, f"the run for {service} to finish"
        )
        runs.append(finished_run(ingest, service, runbook_name))
    return runs


def pages(standin: Standin, runbook_name: str) -> list[str]:
    bodies = [json.dumps(r["body"]) for r in standin.requests("/hooks/oncall")]
    return [b for b in bodies if runbook_name in b]


def blocks(port: int) -> dict[str, int]:
    return worker_counts(port, "firebreak_guardrail_blocks_total", "guardrail")


def test_a_runbook_triggered_ten_times_runs_only_as_often_as_its_bucket_allows(
    ingest: Ingest, standin: Standin, worker
):
    _, port = worker
    before = blocks(port).get("per_target", 0)
    runs = one_by_one(ingest, "CrashLoop", "limited-restart", ["web"] * 10)
    assert [r["status"] for r in runs] == ["succeeded"] * 3 + ["failed"] * 7
    assert all(r["error"] == "guardrail per_target: 3 runs against web within 1h already" for r in runs[3:]), runs[3]
    assert len(standin.requests("/hooks/restart-web")) == 3
    # Every blocked run paged a human with the reason, once.
    wait_until(lambda: len(pages(standin, "limited-restart")) == 7, 30, "a page per blocked run")
    assert all("did not run" in p and "3 runs against web within 1h" in p for p in pages(standin, "limited-restart"))
    assert blocks(port).get("per_target", 0) == before + 7
    # Another target has its own bucket.
    assert one_by_one(ingest, "CrashLoop", "limited-restart", ["api"])[0]["status"] == "succeeded"


def test_the_blast_radius_caps_distinct_targets(ingest: Ingest, standin: Standin, worker):
    runs = one_by_one(ingest, "NodeDown", "wide-restart", ["a", "b", "a", "c"])
    assert [r["status"] for r in runs] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert runs[3]["error"] == "guardrail blast_radius: 2 distinct targets within 1h already; c would be one more"
    assert [len(standin.requests(f"/hooks/wide-{d}")) for d in "abc"] == [2, 1, 0]


def test_the_circuit_breaker_opens_after_failures_in_a_row(ingest: Ingest, standin: Standin, worker):
    _, port = worker
    response = requests.post(
        standin.base + "/control", json={"path": "/hooks/fragile", "fail": 2, "status": 500}, timeout=5
    )
    assert response.ok, response.text
    runs = one_by_one(ingest, "Fragile", "fragile-restart", ["x", "y", "z"])
    assert [r["status"] for r in runs] == ["failed", "failed", "failed"]
    assert "500" in runs[0]["error"] and "500" in runs[1]["error"]
    assert runs[2]["error"].startswith("guardrail circuit_breaker: open after 2 failed runs in a row, until ")
    assert len(standin.requests("/hooks/fragile")) == 2  # the third never reached the target
    assert blocks(port).get("circuit_breaker", 0) >= 1


def test_decisions_are_kept_per_run_and_the_breaker_half_opens(stack: Stack):
    """The Guard against the real Redis, on a virtual clock: asking again for the same run takes no second
    token; after the cooldown one trial run goes, and a failure opens the breaker again."""
    import asyncio
    from datetime import timedelta

    import redis.asyncio as aioredis

    from actions.guardrails import Guard
    from schemas.runbook import Guardrails

    rails = Guardrails.model_validate(
        {"rate": {"max": 2, "per": "1m"}, "circuit_breaker": {"failures": 2, "cooldown": "10m"}}
    )
    t0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)

    async def scenario() -> list[str]:
        client = aioredis.Redis.from_url(stack.redis_url)
        guard = Guard(client, f"test-{RUN}:")

        async def ask(run_id: str, minutes: float) -> str:
            return (await guard.admit("rb", rails, run_id, "t", t0 + timedelta(minutes=minutes))).guardrail or "ok"

        try:
            seen = [await ask(run_id, 0) for run_id in ("r1", "r1", "r1", "r2", "r3")]  # r1 thrice: one token
            await guard.outcome("rb", rails, "r2", False, t0)
            await guard.outcome("rb", rails, "r2", False, t0)  # reported twice: one failure
            seen.append(await ask("r4", 2))  # the window slid; one failure does not open it
            await guard.outcome("rb", rails, "r4", False, t0 + timedelta(minutes=2))  # two in a row: open
            seen.append(await ask("r5", 3))
            seen += [await ask("r6", 13), await ask("r7", 13)]  # after the cooldown: one trial only
            await guard.outcome("rb", rails, "r6", True, t0 + timedelta(minutes=13))  # the trial succeeded: closed
            seen.append(await ask("r8", 13))
        finally:
            await client.aclose()
        return seen

    assert asyncio.run(scenario()) == [
        "ok",
        "ok",
        "ok",
        "ok",
        "rate",
        "ok",
        "circuit_breaker",
        "ok",
        "circuit_breaker",
        "ok",
    ]
