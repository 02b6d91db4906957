"""Firebreak against a Kafka listener that needs SASL/PLAIN (the local broker's second listener): topics,
ingest and a worker all authenticate with the password from a secret; a wrong password is refused."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.conftest import FIREBREAK, KAFKA_SASL_PASSWORD, Stack, start_ingest, start_ready_worker, wait_until

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]


def sasl_env(stack: Stack, password: str) -> dict[str, str]:
    return {
        "FIREBREAK_KAFKA_BOOTSTRAP": stack.sasl_bootstrap,
        "FIREBREAK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "FIREBREAK_KAFKA_SASL_MECHANISM": "PLAIN",
        "FIREBREAK_KAFKA_SASL_USERNAME": "firebreak",
        "FIREBREAK_KAFKA_SASL_PASSWORD_SECRET": "KAFKA_PASSWORD",
        "FIREBREAK_SECRET_KAFKA_PASSWORD": password,
    }


def test_every_client_authenticates_with_sasl(stack: Stack):
    env = sasl_env(stack, KAFKA_SASL_PASSWORD)
    topics = subprocess.run(
        [FIREBREAK, "topics", "create"], env={**stack.env, **env}, capture_output=True, text=True, timeout=60
    )
    assert topics.returncode == 0 and "incident-events" in topics.stdout, topics.stderr
    ingest = start_ingest(stack, stack.folder / "ingest-sasl.log", **env)
    worker, _ = start_ready_worker(stack, "worker-sasl", **env)
    try:
        wait_until(lambda: ingest.get("/readyz", token=None).status_code == 200, 30, "ingest to reach Kafka over SASL")
        alert = {"labels": {"alertname": "OverSasl", "service": f"sasl-{RUN}", "severity": "warning"}}
        assert ingest.post("/api/v1/alerts", json.dumps([alert])).status_code == 202

        def opened() -> bool:
            found = ingest.get("/api/v1/incidents?limit=1000").json()["incidents"]
            return any(i["group_labels"].get("service") == f"sasl-{RUN}" for i in found)

        wait_until(opened, 60, "the worker (over SASL) to open the incident")
    finally:
        worker.stop()
        ingest.process.stop()


def test_a_wrong_password_is_refused_and_ingest_says_it_is_not_ready(stack: Stack):
    env = sasl_env(stack, "not-the-password")
    topics = subprocess.run(
        [FIREBREAK, "topics", "create"], env={**stack.env, **env}, capture_output=True, text=True, timeout=90
    )
    assert topics.returncode != 0
    ingest = start_ingest(stack, stack.folder / "ingest-sasl-wrong.log", **env)
    try:
        assert ingest.get("/readyz", token=None).status_code == 503
        refused = ingest.post(
            "/api/v1/alerts", json.dumps([{"labels": {"alertname": "Nope", "service": f"sasl-{RUN}"}}])
        )
        assert refused.status_code == 503  # nothing accepted that is not durable
    finally:
        ingest.process.stop()


def test_sasl_without_credentials_is_a_configuration_error(stack: Stack):
    env = {**stack.env, "FIREBREAK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}
    shown = subprocess.run([FIREBREAK, "config", "show"], env=env, capture_output=True, text=True, timeout=30)
    assert shown.returncode != 0 and "kafka_sasl_username and kafka_sasl_password_secret" in shown.stderr
