"""Token scopes and the audit log on a running ingest: each token can do what its scope allows and no more,
and every operator or admin action (including refused ones) is recorded with who did it; requests without a
valid credential cannot flood the log; a client that sends half a request is cut off."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.conftest import FIREBREAK, Ingest, Stack, start_ingest, wait_until

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
TOKENS = {"ingest": f"am-{RUN}", "operator": f"ana-{RUN}", "admin": f"root-{RUN}"}
READ_TIMEOUT = 2.0  # http_read_timeout_seconds of this module's ingest


@pytest.fixture(scope="module")
def scoped(stack: Stack) -> Iterator[Ingest]:
    entries = f"ingest:alertmanager:{TOKENS['ingest']},operator:ana:{TOKENS['operator']},admin:root:{TOKENS['admin']}"
    server = start_ingest(
        stack,
        stack.folder / "ingest-scoped.log",
        FIREBREAK_INGEST_TOKENS=entries,
        FIREBREAK_REDIS_PREFIX=f"scoped-{RUN}:",
        FIREBREAK_HTTP_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
        FIREBREAK_SECRET_LINK_SIGNING_KEY=f"link-key-{RUN}",
    )
    wait_until(lambda: server.get("/readyz", token=None).status_code == 200, 30, "ingest to reach Kafka")
    yield server
    server.process.stop()


def test_each_scope_can_do_what_it_allows_and_no_more(scoped: Ingest):
    alert = json.dumps([{"labels": {"alertname": "ScopeCheck", "service": f"scope-{RUN}"}}])
    assert scoped.post("/api/v1/alerts", alert, token=TOKENS["ingest"]).status_code == 202
    refused = scoped.get("/api/v1/incidents", token=TOKENS["ingest"])
    assert (
        refused.status_code == 403
        and "needs operator" in refused.json()["message"]
        and "alertmanager" in refused.json()["message"]
    )
    assert scoped.get("/api/v1/incidents", token=TOKENS["operator"]).status_code == 200
    pause = json.dumps({"actor": "ana"})
    assert scoped.post("/api/v1/runbooks/pause", pause, token=TOKENS["operator"]).status_code == 403
    assert scoped.get("/api/v1/audit", token=TOKENS["operator"]).status_code == 403
    assert (
        scoped.post("/api/v1/runbooks/pause", json.dumps({"actor": "root-person"}), token=TOKENS["admin"]).status_code
        == 200
    )
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
    assert ("ana", "ana", "POST /api/v1/incidents/{incident_id}/ack", 404) in actions  # refused actions count too
    assert ("root", "root-person", "POST /api/v1/runbooks/pause", 200) in actions
    listed = subprocess.run(
        [FIREBREAK, "audit", "--url", scoped.url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**stack.env, "FIREBREAK_INGEST_TOKENS": f"admin:root:{TOKENS['admin']}"},
    )
    assert listed.returncode == 0 and "POST /api/v1/silences" in listed.stdout, listed.stderr


def _audit(scoped: Ingest) -> dict[str, list[dict]]:
    return scoped.get("/api/v1/audit?limit=10000", token=TOKENS["admin"]).json()


def test_scope_refusals_are_audited_with_the_actor_the_request_named(scoped: Ingest):
    refused = scoped.post(
        "/api/v1/runbooks/pause", json.dumps({"actor": f"ana-{RUN}-person"}), token=TOKENS["operator"]
    )
    assert refused.status_code == 403
    entries = _audit(scoped)["entries"]
    assert any(
        (e["principal"], e["actor"], e["action"], e["status"])
        == ("ana", f"ana-{RUN}-person", "POST /api/v1/runbooks/pause", 403)
        and "needs admin" in e["detail"]
        for e in entries
    ), entries[:5]


def test_unauthenticated_text_is_escaped_and_capped_and_a_flood_cannot_evict_authenticated_entries(scoped: Ingest):
    silence = {
        "matchers": [f'service="flood-{RUN}"'],
        "duration": "1h",
        "createdBy": f"ana-{RUN}-flood",
        "comment": "before",
    }
    assert scoped.post("/api/v1/silences", json.dumps(silence), token=TOKENS["operator"]).status_code == 201
    hostile = {"actor": "mallory\r\n2026-01-01 audit POST by root (root): forged -> 200" + "A" * 16_000}
    assert scoped.post("/api/v1/incidents/inc-x/ack", json.dumps(hostile), token="not-a-token").status_code == 401
    forged = "/l/ack/inc-{n}?by=" + "m" * 250 + "&exp=9999999999&sig=" + "0" * 64
    for n in range(80):  # forged links: each refused, none may push a genuine entry out
        assert (
            scoped.post(
                forged.format(n=n), "", content_type="application/x-www-form-urlencoded", token=None
            ).status_code
            == 403
        )
    log = _audit(scoped)
    assert any(e["actor"] == f"ana-{RUN}-flood" and e["status"] == 201 for e in log["entries"])
    assert not any(e["principal"] == "unauthenticated" for e in log["entries"])
    refused = log["unauthenticated"]
    shown = [e for e in refused if e["action"] == "POST /api/v1/incidents/{incident_id}/ack"]
    assert shown and shown[0]["actor"].startswith("mallory\\x0d\\x0a2026-01-01") and "\n" not in shown[0]["actor"]
    assert len(shown[0]["actor"]) < 230 and shown[0]["actor"].endswith("chars)")
    links = [e for e in refused if e["action"] == "POST /l/{action}/{incident_id}"]
    summaries = [e for e in refused if e["action"] == "refusals beyond the limit"]
    assert len(links) <= 2 * 20 and summaries and sum(s["refused"] for s in summaries) >= 81
    assert all(len(e["actor"]) < 230 for e in links)


def _cut_off_after(url: str, partial: bytes) -> tuple[float, bytes]:
    """Send part of a request and wait for the server to close the connection: (seconds it took, what came back)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(partial)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        return time.monotonic() - started, received


def test_a_client_that_sends_half_a_request_is_cut_off(scoped: Ingest):
    head = b"GET /api/v1/incidents HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
    took, received = _cut_off_after(scoped.url, head)
    assert took < READ_TIMEOUT + 1.5 and received == b"", (took, received)
    body = (
        b"POST /api/v1/alerts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
        + TOKENS["ingest"].encode()
        + b'\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{"labels": '
    )
    took, received = _cut_off_after(scoped.url, body)
    assert took < 2 * READ_TIMEOUT + 1.5, took  # the 408 at the read timeout, then at most as long lingering
    assert received.startswith(b"HTTP/1.1 408") and b"http_read_timeout_seconds" in received, received[:300]
    assert scoped.get("/api/v1/incidents", token=TOKENS["operator"]).status_code == 200  # and it keeps serving
