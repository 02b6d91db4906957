"""Runbooks through the live pipeline: alerts in over HTTP, incidents from the worker, the shipped example
runbooks run against the stand-in API (a real local HTTP server), approvals through the API and CLI, and a
worker killed in the middle of a run."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from tests.conftest import (
    FIREBREAK,
    ROOT,
    Ingest,
    Process,
    Stack,
    Standin,
    start_ready_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
STANDIN_TOKEN = "standin-token"


@pytest.fixture(scope="module")
def standin(stack: Stack) -> Iterator[Standin]:
    server = Standin(stack, "standin.log", token=STANDIN_TOKEN)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runbooks_env(tmp_path_factory: pytest.TempPathFactory, standin: Standin) -> dict[str, str]:
    """The shipped runbooks (pointed at this stand-in's port) plus three for this test, and their settings."""
    folder = tmp_path_factory.mktemp("runbooks")
    for path in (ROOT / "runbooks").glob("*.yaml"):
        (folder / path.name).write_text(path.read_text().replace("127.0.0.1:8089", f"127.0.0.1:{standin.port}"))
    (folder / "slow-fix.yaml").write_text(f"""name: slow-fix
description: Three calls, the middle one slow; the test kills the worker during it.
owner: test
on: [opened]
match:
  matchers: ['alertname="SlowFix"', 'run="{RUN}"']
steps:
  - id: before
    http: {{url: "{standin.base}/hooks/before"}}
  - id: slow
    http: {{url: "{standin.base}/slow/fix"}}
    timeout: 60s
    on_failure: continue
  - id: after
    http: {{url: "{standin.base}/hooks/after"}}
""")
    (folder / "gated.yaml").write_text(f"""name: gated
description: Ask first, then call.
owner: test
on: [opened]
match:
  matchers: ['alertname="NeedsApproval"', 'run="{RUN}"']
steps:
  - id: ask
    approval: {{prompt: "restart {{{{ labels.service }}}}?", timeout: 10m}}
  - id: act
    http: {{url: "{standin.base}/hooks/approved-{{{{ labels.service }}}}"}}
""")
    (folder / "probe.yaml").write_text(f"""name: probe
description: A label in a URL path segment, sent with the deploy token.
owner: test
on: [opened]
match:
  matchers: ['alertname="PathProbe"', 'run="{RUN}"']
steps:
  - id: call
    http:
      url: "{standin.base}/hooks/probe/{{{{ labels.target | urlencode }}}}"
      headers: {{Authorization: {{secret: DEPLOY_API_TOKEN, format: "Bearer {{}}"}}}}
""")
    notifications = folder.parent / f"{folder.name}-notifications.yaml"
    # Channels only: this module is about runbooks; paging has its own (test_paging_live.py).
    notifications.write_text(f"""channels:
  chat: {{type: webhook, url: "{standin.base}/hooks/chat"}}
  oncall: {{type: webhook, url: "{standin.base}/hooks/oncall"}}
""")
    return {
        "FIREBREAK_RUNBOOKS_DIR": str(folder),
        "FIREBREAK_NOTIFICATIONS_FILE": str(notifications),
        "FIREBREAK_ACTIONS_ALLOWED_HOSTS": f"127.0.0.1:{standin.port}",
        "FIREBREAK_ACTIONS_ALLOWED_COMMANDS": "df,find",
        "FIREBREAK_SECRET_DEPLOY_API_TOKEN": STANDIN_TOKEN,
        "FIREBREAK_EXECUTOR_LEASE_SECONDS": "3",
        "FIREBREAK_EXECUTOR_POLL_SECONDS": "0.2",
    }


@pytest.fixture(scope="module")
def worker(stack: Stack, runbooks_env: dict[str, str]) -> Iterator[list[Process]]:
    """The running workers of this module (the kill test replaces the first)."""
    process, _ = start_ready_worker(stack, "worker-runbooks", **runbooks_env)
    workers = [process]
    yield workers
    for w in workers:
        w.stop()


def post(ingest: Ingest, alerts: list[dict]) -> None:
    response = ingest.post("/api/v1/alerts", json.dumps(alerts))
    assert response.status_code == 202, response.text


def alert(name: str, service: str, severity: str = "critical", **extra: str) -> dict:
    return {
        "labels": {"alertname": name, "service": service, "severity": severity, "run": RUN, **extra},
        "annotations": {"summary": f"{name} on {service}"},
        "startsAt": datetime.now(UTC).isoformat(),
    }


def incident_of(ingest: Ingest, service: str) -> dict | None:
    found = ingest.get("/api/v1/incidents?limit=1000").json()["incidents"]
    return next((i for i in found if any(a["labels"].get("service") == service for a in i["alerts"].values())), None)


def runs_of(ingest: Ingest, incident_id: str) -> dict[str, dict]:
    return {r["runbook"]: r for r in ingest.get(f"/api/v1/runs?incident={incident_id}").json()["runs"]}


def settled(ingest: Ingest, incident_id: str, names: set[str]) -> bool:
    runs = runs_of(ingest, incident_id)
    return set(runs) >= names and all(runs[n]["status"] in ("succeeded", "failed", "unknown") for n in names)


def cli(stack: Stack, ingest: Ingest, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FIREBREAK, *args, "--url", ingest.url], env=stack.env, capture_output=True, text=True, timeout=60
    )


def test_an_incident_runs_the_example_runbooks_once(
    stack: Stack, ingest: Ingest, standin: Standin, worker: list[Process]
):
    service = f"checkout-{RUN}"
    post(ingest, [alert("HighLatency", service, instance="a:1"), alert("HighLatency", service, instance="b:1")])
    wait_until(lambda: incident_of(ingest, service) is not None, 60, "the incident to open")
    incident = incident_of(ingest, service)
    wait_until(
        lambda: settled(ingest, incident["id"], {"restart-service", "post-context"}), 60, "the runbooks to finish"
    )
    runs = runs_of(ingest, incident["id"])
    assert runs["restart-service"]["status"] == "succeeded", runs["restart-service"]
    assert runs["post-context"]["status"] == "succeeded", runs["post-context"]
    assert set(runs) == {"restart-service", "post-context"}  # clear-disk and chat-on-resolve do not match

    restarts = standin.requests(f"/v1/services/{service}/restart")
    assert len(restarts) == 1 and restarts[0]["headers"]["Authorization"] == f"Bearer {STANDIN_TOKEN}"
    assert restarts[0]["body"] == {
        "reason": f"firebreak incident {incident['id']}: {incident['title']}",
        "strategy": "rolling",
    }
    assert len(standin.requests(f"/v1/services/{service}/health")) == 1
    posts = [r for r in standin.requests("/hooks/chat") if r["body"]["incident"]["id"] == incident["id"]]
    assert len(posts) == 1 and posts[0]["body"]["text"].startswith(f"[CRITICAL] {incident['title']}")
    assert posts[0]["headers"]["Idempotency-Key"] == f"{runs['post-context']['id']}/post"
    assert STANDIN_TOKEN not in json.dumps(runs)  # the secret reached the API, never the record

    # The incident timeline shows the runbooks' results next to the incident's own events.
    timeline = ingest.get(f"/api/v1/incidents/{incident['id']}/timeline").json()["timeline"]
    notes = [e["output"]["text"] for e in timeline if e["source"] == "action" and e["kind"] == "annotation"]
    assert any(n.startswith(f"Restarted {service} (deploy d-") and n.endswith("health healthy.") for n in notes), notes
    assert timeline[0]["source"] == "incident" and timeline[0]["kind"] == "opened"

    # The runbook entries are a view of action-results: lost from Redis, a rebuild brings them back.
    redis.Redis.from_url(stack.redis_url).delete(f"fb:incident:{incident['id']}:actions")
    assert [
        e
        for e in ingest.get(f"/api/v1/incidents/{incident['id']}/timeline").json()["timeline"]
        if e["source"] == "action"
    ] == []
    rebuilt = subprocess.run(
        [FIREBREAK, "readmodel", "rebuild"], env=stack.env, capture_output=True, text=True, timeout=120
    )
    assert rebuilt.returncode == 0 and "action_recorded" in rebuilt.stdout, rebuilt.stderr
    again = ingest.get(f"/api/v1/incidents/{incident['id']}/timeline").json()["timeline"]
    before = {e["result_id"] for e in timeline if e["source"] == "action"}
    assert before and before <= {e["result_id"] for e in again if e["source"] == "action"}

    shown = cli(stack, ingest, "runs", "list", "--incident", incident["id"])
    assert shown.returncode == 0 and shown.stdout.count("succeeded") == 2, shown.stderr

    # Resolving sends the resolve-triggered runbook's chat message, once.
    assert ingest.post(f"/api/v1/incidents/{incident['id']}/resolve", json.dumps({"actor": "ana"})).status_code == 202
    wait_until(lambda: settled(ingest, incident["id"], {"chat-on-resolve"}), 60, "the resolve runbook")
    chats = [
        r
        for r in standin.requests("/hooks/chat")
        if r["body"]["incident"]["id"] == incident["id"] and r["body"]["text"].startswith("Resolved:")
    ]
    assert len(chats) == 1 and chats[0]["body"]["text"].startswith(f"Resolved: {incident['title']}")


def test_an_approval_gate_waits_for_a_person(stack: Stack, ingest: Ingest, standin: Standin, worker: list[Process]):
    yes, no = f"yes-{RUN}", f"no-{RUN}"
    post(ingest, [alert("NeedsApproval", yes), alert("NeedsApproval", no)])
    wait_until(
        lambda: incident_of(ingest, yes) is not None and incident_of(ingest, no) is not None, 60, "the incidents"
    )
    ids = {s: incident_of(ingest, s)["id"] for s in (yes, no)}
    wait_until(
        lambda: all(runs_of(ingest, i).get("gated", {}).get("status") == "waiting" for i in ids.values()),
        60,
        "the runs to wait at the approval",
    )
    run_yes, run_no = (runs_of(ingest, ids[s])["gated"]["id"] for s in (yes, no))
    assert standin.requests(f"/hooks/approved-{yes}") == []

    approved = cli(stack, ingest, "runs", "approve", run_yes, "--actor", "ana", "--comment", "go")
    assert approved.returncode == 0 and "approved by ana" in approved.stdout, approved.stderr
    rejected = ingest.post(f"/api/v1/runs/{run_no}/reject", json.dumps({"actor": "bo"}))
    assert rejected.status_code == 202
    wait_until(
        lambda: settled(ingest, ids[yes], {"gated"}) and settled(ingest, ids[no], {"gated"}), 60, "the decisions"
    )
    assert runs_of(ingest, ids[yes])["gated"]["status"] == "succeeded"
    assert runs_of(ingest, ids[no])["gated"]["status"] == "failed"
    assert len(standin.requests(f"/hooks/approved-{yes}")) == 1 and standin.requests(f"/hooks/approved-{no}") == []
    again = ingest.post(f"/api/v1/runs/{run_yes}/approve", json.dumps({"actor": "ana"}))
    assert again.status_code == 409 and "not waiting" in again.json()["message"]


def test_a_label_in_a_url_stays_one_path_segment(stack: Stack, ingest: Ingest, standin: Standin, worker: list[Process]):
    victim = f"victim-{RUN}"
    walk = f"../../v1/services/{victim}/restart"
    post(ingest, [alert("PathProbe", f"probe-{RUN}", target=walk)])
    wait_until(lambda: incident_of(ingest, f"probe-{RUN}") is not None, 60, "the incident")
    incident_id = incident_of(ingest, f"probe-{RUN}")["id"]
    wait_until(lambda: settled(ingest, incident_id, {"probe"}), 60, "the probe run")
    assert standin.requests(f"/v1/services/{victim}/restart") == []  # the token never reached the deploy API
    assert [r["path"] for r in standin.requests("/hooks/probe")] == [f"/hooks/probe/{walk}"]  # one segment, decoded


def test_a_worker_killed_mid_run_leaves_no_step_repeated(
    stack: Stack, ingest: Ingest, standin: Standin, worker: list[Process], runbooks_env: dict[str, str]
):
    service = f"slow-{RUN}"
    standin.control(path="/slow/fix", fail=1, status=200, delay=8)
    post(ingest, [alert("SlowFix", service)])
    wait_until(lambda: len(standin.requests("/slow/fix")) == 1, 60, "the slow step to start")
    worker[0].kill()  # SIGKILL while the slow call is in flight
    replacement, _ = start_ready_worker(stack, "worker-runbooks-2", **runbooks_env)
    worker[0] = replacement
    incident = incident_of(ingest, service)
    assert incident is not None
    wait_until(lambda: settled(ingest, incident["id"], {"slow-fix"}), 90, "the replacement to finish the run")
    run = runs_of(ingest, incident["id"])["slow-fix"]
    assert len(standin.requests("/hooks/before")) == 1  # done before the kill: not repeated
    assert len(standin.requests("/slow/fix")) == 1  # outcome lost with the worker: reported, not re-run
    assert run["steps"]["slow"]["status"] == "unknown"
    assert len(standin.requests("/hooks/after")) == 1  # on_failure: continue, so the run went on, once
    assert run["status"] == "succeeded"
