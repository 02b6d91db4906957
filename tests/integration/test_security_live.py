"""Token scopes and the audit log on a running ingest: each token can do what its scope allows and no more,
and every operator or admin action (including refused ones) is recorded with who did it."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import FIREBREAK, Ingest, Stack, start_ingest, wait_until

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
TOKENS = {"ingest": f"am-{RUN}", "operator": f"ana-{RUN}", "admin": f"root-{RUN}"}


@pytest.fixture(scope="module")
def scoped(stack: Stack) -> Iterator[Ingest]:
    entries = f"ingest:alertmanager:{TOKENS['ingest']},operator:ana:{TOKENS['operator']},admin:root:{TOKENS['admin']}"
    server = start_ingest(stack, stack.folder / "ingest-scoped.log", FIREBREAK_INGEST_TOKENS=entries)
    wait_until(lambda: server.get("/readyz", token=None).status_code == 200, 30, "ingest to reach Kafka")
    yield server
    server.process.stop()


def test_each_scope_can_do_what_it_allows_and_no_more(scoped: Ingest):
    alert = json.dumps([{"labels": {"alertname": "ScopeCheck", "service": f"scope-{RUN}"}}])
    assert scoped.post("/api/v1/alerts", alert, token=TOKENS["ingest"]).status_code == 202
    refused = scoped.get("/api/v1/incidents", token=TOKENS["ingest"])
    assert refused.status_code == 403 and "needs operator" in refused.json()["message"] and "alertmanager" in refused.json()["message"]
    assert scoped.get("/api/v1/incidents", token=TOKENS["operator"]).status_code == 200
    pause = json.dumps({"actor": "ana"})
    assert scoped.post("/api/v1/runbooks/pause", pause, token=TOKENS["operator"]).status_code == 403
    assert scoped.get("/api/v1/audit", token=TOKENS["operator"]).status_code == 403
    assert scoped.post("/api/v1/runbooks/pause", json.dumps({"actor": "root-person"}), token=TOKENS["admin"]).status_code == 200
    assert scoped.post("/api/v1/runbooks/resume", "{}", token=TOKENS["admin"]).status_code == 200
    assert scoped.get("/api/v1/incidents", token="not-a-token").status_code == 401


def test_operator_actions_are_audited_with_who_did_them(scoped: Ingest, stack: Stack):
    silence = {"matchers": [f'service="audit-{RUN}"'], "duration": "1h", "createdBy": "ana", "comment": "maintenance"}
    created = scoped.post("/api/v1/silences", json.dumps(silence), token=TOKENS["operator"])
    assert created.status_code == 201
    missing = scoped.post("/api/v1/incidents/inc-nope/ack", json.dumps({"actor": "ana"}), token=TOKENS["operator"])
    assert missing.status_code == 404
    entries = scoped.get("/api/v1/audit?limit=50", token=TOKENS["admin"]).json()["entries"]
    actions = [(e["principal"], e["actor"], e["action"], e["status"]) for e in entries]
    assert ("ana", "ana", "POST /api/v1/silences", 201) in actions
    assert ("ana", None, "POST /api/v1/incidents/{incident_id}/ack", 404) in actions  # refused actions count too
    assert ("root", "root-person", "POST /api/v1/runbooks/pause", 200) in actions
    listed = subprocess.run([FIREBREAK, "audit", "--url", scoped.url], capture_output=True, text=True, timeout=30,
                            env={**stack.env, "FIREBREAK_INGEST_TOKENS": f"admin:root:{TOKENS['admin']}"})
    assert listed.returncode == 0 and "POST /api/v1/silences" in listed.stdout, listed.stderr
