"""People merging and splitting incidents through the live pipeline (ingest, Kafka, the worker, Redis, the
pager and the stand-in receiver): the read model of both sides, where later copies of moved alerts go, that
paging stops for a merged incident and starts for a split-off one, and the audit and decision log entries."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from correlation.fingerprint import fingerprint
from tests.conftest import FIREBREAK, Ingest, Process, Stack, Standin, start_ready_worker, wait_until

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
DELAY = 15  # seconds between escalation levels: a merge lands well inside it, even on a loaded machine


@pytest.fixture(scope="module")
def receiver(stack: Stack) -> Iterator[Standin]:
    server = Standin(stack, "receiver-regroup.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, stack: Stack, receiver: Standin) -> Iterator[Process]:
    folder = tmp_path_factory.mktemp("regroup")
    (folder / "notifications.yaml").write_text(f"""
channels:
  pager: {{type: webhook, url: "{receiver.base}/hooks/pager"}}
users:
  u1: {{contacts: [{{channel: pager, address: u1}}]}}
  u2: {{contacts: [{{channel: pager, address: u2}}]}}
escalation_policies:
  esc:
    levels:
      - {{targets: [{{user: u1}}], delay: {DELAY}s}}
      - {{targets: [{{user: u2}}], delay: {DELAY}s}}
routes:
  - {{matchers: ['run="{RUN}"'], policy: esc}}
  - {{policy: null}}
""")
    (folder / "correlation.yaml").write_text(f"""
policies:
  - name: one-each  # each alert its own incident, all of one correlation key: what people merge
    match: ['alertname="Merge"', 'run="{RUN}"']
    group_by: [alertname, run]
    max_alerts: 1
  - name: together
    match: ['alertname="Split"', 'run="{RUN}"']
    group_by: [alertname, run]
""")
    process, _ = start_ready_worker(
        stack,
        "worker-regroup",
        FIREBREAK_POLICIES_FILE=str(folder / "correlation.yaml"),
        FIREBREAK_NOTIFICATIONS_FILE=str(folder / "notifications.yaml"),
        FIREBREAK_ACTIONS_ALLOWED_HOSTS=receiver.base.removeprefix("http://"),
        FIREBREAK_NOTIFY_UPDATE_INTERVAL_SECONDS="2",
        FIREBREAK_PAGER_POLL_SECONDS="0.2",
        FIREBREAK_PAGER_LEASE_SECONDS="3",
    )
    yield process
    process.stop()


def labels(name: str, instance: str) -> dict[str, str]:
    return {"alertname": name, "instance": instance, "run": RUN, "severity": "critical"}


def post(ingest: Ingest, name: str, instance: str, status: str = "firing") -> None:
    response = ingest.post("/api/v1/alerts", json.dumps([{"labels": labels(name, instance), "status": status}]))
    assert response.status_code == 202, response.text


def holding(ingest: Ingest, name: str, instance: str) -> dict:
    """The open incident that lists this alert."""
    fp = fingerprint(labels(name, instance))

    def found() -> dict | None:
        listed = ingest.get("/api/v1/incidents?status=open&limit=1000").json()["incidents"]
        return next((i for i in listed if fp in i["alerts"]), None)

    wait_until(lambda: found() is not None, 60, f"the incident of {name} {instance}")
    return found()  # type: ignore[return-value]


def incident(ingest: Ingest, incident_id: str) -> dict:
    return ingest.get(f"/api/v1/incidents/{incident_id}").json()


def sent(receiver: Standin, incident_id: str, kind: str, address: str | None = None) -> list[dict]:
    """What the pager sent about this incident (by its id in the body, not a mention of it)."""
    return [
        r
        for r in receiver.requests("/hooks/pager")
        if r["body"]["incident"]["id"] == incident_id
        and r["body"]["kind"] == kind
        and (address is None or r["body"]["address"] == address)
    ]


def cli(stack: Stack, *args: str) -> str:
    result = subprocess.run([FIREBREAK, *args], env=stack.env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_merged_incident_stops_paging_and_its_alerts_follow_the_target(
    stack: Stack, ingest: Ingest, receiver: Standin, worker: Process
):
    post(ingest, "Merge", "a")
    target = holding(ingest, "Merge", "a")["id"]
    post(ingest, "Merge", "b")
    source = holding(ingest, "Merge", "b")["id"]
    assert source != target
    wait_until(
        lambda: sent(receiver, source, "page", "u1") and sent(receiver, target, "page", "u1"), 30, "level 1 of both"
    )
    paged_at = time.monotonic()

    accepted = ingest.post(
        f"/api/v1/incidents/{source}/merge", json.dumps({"into": target, "actor": "alice", "comment": "one outage"})
    )
    assert accepted.status_code == 202, accepted.text
    wait_until(lambda: incident(ingest, source)["status"] == "resolved", 30, "the merge to apply")
    assert time.monotonic() - paged_at < DELAY, "the merge landed after level 2 was due: nothing left to prove"
    merged, taken = incident(ingest, source), incident(ingest, target)
    assert (merged["merged_into"], merged["resolved_by"], merged["alerts"]) == (target, "alice", {})
    assert merged["timeline"][-1]["kind"] == "merged" and merged["timeline"][-1]["actor"] == "alice"
    fp_a, fp_b = fingerprint(labels("Merge", "a")), fingerprint(labels("Merge", "b"))
    assert set(taken["alerts"]) == {fp_a, fp_b} and taken["merged_from"] == [source] and taken["status"] == "triggered"
    assert taken["alerts"][fp_b]["labels"]["instance"] == "b"
    assert [(t["kind"], t["actor"]) for t in taken["timeline"] if t["rule"] == "GRP-30"] == [
        ("merged_in", "alice"),
        ("alert_added", "alice"),
    ]

    # Paging: those paged for the merged incident hear it went into the target, and its level 2 never comes.
    wait_until(lambda: sent(receiver, source, "resolve", "u1"), 30, "the merged incident's resolve notice")
    assert sent(receiver, source, "resolve", "u1")[0]["body"]["title"].startswith(f"Merged into {target}")
    wait_until(lambda: sent(receiver, target, "page", "u2"), DELAY + 30, "the target's level 2")
    time.sleep(max(0.0, paged_at + DELAY + 3 - time.monotonic()))
    assert sent(receiver, source, "page", "u2") == []

    # A later copy of the moved alert goes to the target; the merged incident stays as it is.
    post(ingest, "Merge", "b", status="resolved")
    wait_until(
        lambda: incident(ingest, target)["alerts"][fp_b]["status"] == "resolved", 30, "the moved alert's resolve"
    )
    assert incident(ingest, source)["alerts"] == {} and incident(ingest, source)["status"] == "resolved"

    again = ingest.post(f"/api/v1/incidents/{source}/merge", json.dumps({"into": target, "actor": "alice"}))
    assert again.status_code == 409 and f"was merged into {target}" in again.json()["message"]
    audit = ingest.get("/api/v1/audit?limit=50").json()["entries"]
    assert any(
        e["action"] == "POST /api/v1/incidents/{incident_id}/merge"
        and e["actor"] == "alice"
        and e["status"] == 202
        and e["detail"] == f"into {target}"
        and e["target"] == {"incident_id": source}
        for e in audit
    )
    lifecycle = ingest.get(f"/api/v1/incidents/{target}/explain").json()["lifecycle"]
    assert any(f"{source} merged in" in line and "by alice: one outage" in line for line in lifecycle), lifecycle
    assert ingest.post(f"/api/v1/incidents/{target}/ack", json.dumps({"actor": "alice"})).status_code == 202


def test_a_split_off_incident_pages_on_its_own_and_takes_its_alerts_later_copies(
    stack: Stack, ingest: Ingest, receiver: Standin, worker: Process
):
    post(ingest, "Split", "x")
    post(ingest, "Split", "y")
    wait_until(lambda: holding(ingest, "Split", "x")["alert_count"] == 2, 60, "one incident of both alerts")
    source = holding(ingest, "Split", "x")["id"]
    wait_until(lambda: sent(receiver, source, "page", "u1"), 30, "level 1 of the incident")
    fp_x, fp_y = fingerprint(labels("Split", "x")), fingerprint(labels("Split", "y"))

    printed = cli(
        stack,
        "incidents",
        "split",
        source,
        "--alert",
        fp_y,
        "--actor",
        "bob",
        "--comment",
        "two causes",
        "--url",
        ingest.url,
    )
    assert "split of 1 alerts accepted" in printed
    wait_until(lambda: incident(ingest, source)["split_into"] != [], 30, "the split to apply")
    [new] = incident(ingest, source)["split_into"]
    split_off = incident(ingest, new)
    assert (split_off["split_from"], split_off["status"], set(split_off["alerts"])) == (source, "triggered", {fp_y})
    assert split_off["timeline"][0]["actor"] == "bob" and split_off["timeline"][0]["rule"] == "GRP-31"
    assert set(incident(ingest, source)["alerts"]) == {fp_x}
    wait_until(lambda: sent(receiver, new, "page", "u1"), 30, "the split-off incident's own page")

    post(ingest, "Split", "y", status="resolved")  # a later copy: to the incident that now holds it
    wait_until(lambda: incident(ingest, new)["status"] == "resolved", 30, "the split-off incident to resolve")
    assert incident(ingest, new)["alerts"][fp_y]["status"] == "resolved"
    assert incident(ingest, source)["status"] == "triggered" and set(incident(ingest, source)["alerts"]) == {fp_x}
    shown = cli(stack, "incidents", "show", new)
    assert f"split from {source}" in shown and "alerts_split" in cli(stack, "incidents", "show", source)
    decided = ingest.get(f"/api/v1/incidents/{source}/explain").json()["decisions"]
    assert any(
        d["kind"] == "alerts_split" and d["detail"] == {"into": new, "actor": "bob", "alerts": "1"} for d in decided
    )
    assert ingest.post(f"/api/v1/incidents/{source}/ack", json.dumps({"actor": "bob"})).status_code == 202


def test_the_api_refuses_what_the_stage_could_not_apply(ingest: Ingest, worker: Process):
    post(ingest, "Split", "z")
    source = holding(ingest, "Split", "z")
    whole = ingest.post(
        f"/api/v1/incidents/{source['id']}/split", json.dumps({"alerts": list(source["alerts"]), "actor": "bob"})
    )
    assert whole.status_code == 422 and "nothing would remain" in whole.json()["message"], whole.text
    post(ingest, "Merge", "c")
    other_key = holding(ingest, "Merge", "c")["id"]
    across = ingest.post(f"/api/v1/incidents/{source['id']}/merge", json.dumps({"into": other_key, "actor": "bob"}))
    assert across.status_code == 409 and across.json()["error"] == "different_correlation_keys", across.text
    for iid in (source["id"], other_key):
        assert ingest.post(f"/api/v1/incidents/{iid}/ack", json.dumps({"actor": "bob"})).status_code == 202
