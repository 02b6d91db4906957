"""Bad requests get the documented 4xx with a body naming the problem, and nothing reaches Kafka."""

from __future__ import annotations

import json

import pytest

from schemas.batch import alert_records
from tests.conftest import Ingest, Stack, free_port, start_ingest, wait_until

pytestmark = pytest.mark.integration

GOOD = json.dumps([{"labels": {"alertname": "BadInputControl", "service": "ingest-tests"}}])


@pytest.fixture
def nothing_reaches_kafka(stack: Stack):
    before = stack.end_offsets("alerts")
    yield
    assert stack.end_offsets("alerts") == before, "a rejected request put records on the alerts topic"


def problem_fields(response) -> list[str]:
    return [p["field"] for p in response.json()["problems"]]


def test_valid_alert_is_accepted_and_lands_on_kafka(stack: Stack, ingest: Ingest):
    # The control for every test below: the offset check does see an accepted alert.
    before = stack.end_offsets("alerts")
    response = ingest.post("/api/v1/alerts", GOOD)
    assert response.status_code == 202 and response.json()["accepted"] == 1
    assert stack.end_offsets("alerts") == before + 1


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
def test_missing_or_wrong_token_is_401(ingest: Ingest, nothing_reaches_kafka, token):
    response = ingest.post("/api/v1/alerts", GOOD, token=token)
    assert response.status_code == 401 and response.json()["error"] == "unauthenticated"


def test_read_api_needs_the_token_too(ingest: Ingest):
    assert ingest.get("/api/v1/incidents", token="wrong").status_code == 401


def test_malformed_json_is_400(ingest: Ingest, nothing_reaches_kafka):
    response = ingest.post("/api/v1/alerts", '[{"labels": {"a": "b"}')
    assert response.status_code == 400 and response.json()["error"] == "malformed_json"


def test_invalid_utf8_is_400(ingest: Ingest, nothing_reaches_kafka):
    response = ingest.post("/api/v1/alerts", b'{"labels": {"a": "\xff\xfe"}}')
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("alert", "field"),
    [
        ({"labels": {"a": 1}}, "labels.a"),
        ({"labels": ["a", "b"]}, "labels"),
        ({"labels": {"a": "b"}, "status": "exploded"}, "status"),
        ({"labels": {"a": "b"}, "startsAt": "2026-03-01T09:00:00"}, "startsAt"),
        ({"labels": {"a": "b"}, "startsAt": 12345}, "startsAt"),
        ({"labels": {}}, "labels"),
        ({"labels": {"": "x"}}, "labels"),
        ({"labels": {" ": "x"}}, "labels"),  # blank name
        ({"labels": {"a\u200bb": "x"}}, "labels"),  # an invisible character in a name
        ({"labels": {f"l{i}": "v" for i in range(10_000)}}, "labels"),  # 10,000 labels
        ({"labels": {"a": "v" * 100_000}}, "labels"),  # a 100 KB label value
        ({"labels": {"a": "b"}, "annotations": {"summary": "s" * 100_000}}, "annotations"),
        ({"labels": {"a": "b"}, "startsAt": "2999-01-01T00:00:00Z"}, "startsAt"),  # far future: a broken clock
        ({"labels": {"a": "b"}, "startsAt": "2026-03-01T10:00:00Z", "endsAt": "2026-03-01T09:00:00Z"}, "endsAt"),
        ({"labels": {"a": "b"}, "generatorURL": "http://x/" + "a" * 5000}, "generatorURL"),
        ({"labels": {"a": "b"}, "colour": "red"}, "colour"),  # unknown field: a typo is not silently dropped
        # A time from the sender may never mute an alert: a resolve "ending" in 9999 would make every later firing
        # stale, a firing expiry months ahead or a start decades ago is a broken clock (issue 16, A3).
        (
            {"status": "resolved", "labels": {"a": "b", "severity": "critical"}, "endsAt": "9999-12-31T23:59:59Z"},
            "endsAt",
        ),
        ({"labels": {"a": "b"}, "endsAt": "2999-01-01T00:00:00Z"}, "endsAt"),
        ({"labels": {"a": "b"}, "startsAt": "1971-01-01T00:00:00Z"}, "startsAt"),
    ],
)
def test_wrong_shapes_are_422_naming_the_field(ingest: Ingest, nothing_reaches_kafka, alert, field):
    response = ingest.post("/api/v1/alerts", json.dumps([{"labels": {"ok": "fine"}}, alert]))
    assert response.status_code == 422, response.text
    assert problem_fields(response) == [f"[1].{field}"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"labels": {"alertname": "A", "alertname": "B"}}', 400, "duplicate_key"),  # which one wins is ambiguous
        (b"[" * 100_000 + b"]" * 100_000, 400, "malformed_json"),  # deep nesting
        (b'{"labels": {"alertname": "A", "n": ' + b"9" * 5000 + b"}}", 400, "malformed_json"),  # 5,000-digit number
        (b'{"labels": {"alertname": "\\ud800"}}', 400, "malformed_json"),  # lone surrogate
        (b'{"labels": {"alertname": "a\\u0000b"}}', 422, "invalid_alert"),  # NUL in a value
        (b'{"labels": {"alertname": NaN}}', 422, "invalid_alert"),
        (b'{"labels": {"alertname": "A"}, "startsAt": Infinity}', 422, "invalid_alert"),
        (b'{"labels": {"alertname": "A"}, "startsAt": "2016-12-31T23:59:60Z"}', 422, "invalid_alert"),  # leap second
        (b"null", 400, "malformed_json"),
        (b'"just a string"', 400, "malformed_json"),
    ],
)
def test_hostile_json_is_refused_with_the_reason(ingest: Ingest, nothing_reaches_kafka, body, status, reason):
    response = ingest.post("/api/v1/alerts", body)
    assert response.status_code == status and response.json()["error"] == reason, response.text
    assert ingest.get("/healthz", token=None).status_code == 200  # still serving


@pytest.mark.parametrize(
    "labels",
    [
        {"alertname": "Inert", "service": "{{ 7 * 7 }}", "x": "{% for i in range(10**9) %}{% endfor %}"},
        {"alertname": "Inert", "service": "; rm -rf / $(id) `id` | nc evil 1 & --help"},
        {"alertname": "Inert", "service": "../../etc/passwd", "x": "<script>alert(1)</script>"},
        {"alertname": "Inert", "service": "<!channel> *bold* \r\nX-Injected: 1"},
    ],
)
def test_hostile_but_valid_labels_are_data_kept_literally(stack: Stack, ingest: Ingest, labels):
    """Templates, shell syntax, paths and markup in labels are accepted as plain data: stored byte for byte,
    never evaluated (templates render labels as values; commands get them as one argv item)."""
    before = stack.end_offsets("alerts")
    response = ingest.post("/api/v1/alerts", json.dumps([{"labels": labels}]))
    assert response.status_code == 202, response.text
    wait_until(lambda: stack.end_offsets("alerts") == before + 1, 10, "the alert on Kafka")
    fingerprint = response.json()["fingerprints"][0]
    stored = [
        a.labels for v in stack.read_topic("alerts") if v for a in alert_records(v) if a.fingerprint == fingerprint
    ]
    assert stored and stored[-1] == labels


def test_truncated_json_is_400(ingest: Ingest, nothing_reaches_kafka):
    body = json.dumps([{"labels": {"alertname": "A"}, "annotations": {"summary": "x" * 100}}])
    for cut in (1, len(body) // 2, len(body) - 1):
        response = ingest.post("/api/v1/alerts", body[:cut])
        assert response.status_code == 400 and response.json()["error"] == "malformed_json", (cut, response.text)


def test_one_bad_alert_rejects_the_whole_batch(ingest: Ingest, nothing_reaches_kafka):
    # All or nothing: the sender retries the batch, so no half-accepted batches.
    batch = [{"labels": {"alertname": f"A{i}"}} for i in range(50)] + [{"labels": {"x": None}}]
    assert ingest.post("/api/v1/alerts", json.dumps(batch)).status_code == 422


def test_ten_megabyte_body_is_413(ingest: Ingest, nothing_reaches_kafka):
    body = json.dumps([{"labels": {"alertname": "Big", "blob": "x" * 4000}}] * 2600)
    assert len(body) > 10_000_000
    response = ingest.post("/api/v1/alerts", body)
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"


def test_wrong_content_type_is_415(ingest: Ingest, nothing_reaches_kafka):
    response = ingest.post("/api/v1/alerts", GOOD, content_type="text/plain")
    assert response.status_code == 415


def test_empty_body_is_400(ingest: Ingest, nothing_reaches_kafka):
    assert ingest.post("/api/v1/alerts", "").status_code == 400


def test_alertmanager_payload_of_the_wrong_version_is_422(ingest: Ingest, nothing_reaches_kafka):
    body = {"version": "3", "status": "firing", "alerts": [{"status": "firing", "labels": {"a": "b"}}]}
    response = ingest.post("/api/v1/alerts/alertmanager", json.dumps(body))
    assert response.status_code == 422 and problem_fields(response) == ["version"]


def test_server_keeps_serving_after_bad_input(ingest: Ingest):
    assert ingest.get("/healthz").status_code == 200
    metrics = ingest.get("/metrics").text
    assert 'firebreak_alerts_rejected_total{reason="invalid_alert",source="generic"}' in metrics


def test_kafka_unreachable_is_503_with_retry_after(stack: Stack, tmp_path):
    dead = start_ingest(
        stack,
        tmp_path / "ingest-dead-kafka.log",
        FIREBREAK_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        FIREBREAK_PRODUCE_TIMEOUT_SECONDS="2",
    )
    try:
        assert dead.get("/readyz").status_code == 503
        response = dead.post("/api/v1/alerts", GOOD)
        assert response.status_code == 503 and response.headers["Retry-After"]
        assert response.json()["error"] == "kafka_unavailable"
        wait_until(lambda: dead.process.popen.poll() is None, 1, "ingest to stay up")
    finally:
        dead.process.stop()


def test_redis_unreachable_is_503_for_the_read_side_while_alerts_still_land(stack: Stack, tmp_path):
    server = start_ingest(
        stack, tmp_path / "ingest-dead-redis.log", FIREBREAK_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    try:
        wait_until(lambda: server.get("/readyz").status_code == 200, 30, "ingest to reach Kafka")
        for path in ("/api/v1/incidents", "/api/v1/silences", "/api/v1/problems"):
            response = server.get(path)
            assert response.status_code == 503 and response.json()["error"] == "redis_unavailable", path
            assert response.headers["Retry-After"]
        assert server.post("/api/v1/alerts", GOOD).status_code == 202  # ingest does not depend on Redis
    finally:
        server.process.stop()


@pytest.mark.parametrize("at", ["2999-01-01T00:00:00Z", "2001-01-01T00:00:00Z"])
def test_a_change_time_is_bounded_like_every_sender_time(stack: Stack, ingest: Ingest, at: str):
    before = stack.end_offsets("changes")
    response = ingest.post("/api/v1/changes", json.dumps({"service": "db", "summary": "deploy", "at": at}))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_change" and problem_fields(response) == ["at"]
    assert stack.end_offsets("changes") == before


@pytest.mark.parametrize("actor", ["", "ana\u202egnp", "ana\x00", "ana\nFAKE"])
def test_a_bad_command_body_is_invalid_command(ingest: Ingest, actor: str):
    response = ingest.post("/api/v1/incidents/inc-x/ack", json.dumps({"actor": actor}))
    assert response.status_code == 422 and response.json()["error"] == "invalid_command", response.text
