"""deploy/local/stack.sh: idempotent `up`, truthful `status`, and existing services left alone."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import ROOT, Stack

pytestmark = pytest.mark.integration

SCRIPT = str(ROOT / "deploy/local/stack.sh")


def script_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    kafka_port = stack.bootstrap.rsplit(":", 1)[1]
    redis_port = stack.redis_url.rsplit(":", 1)[1].split("/")[0]
    return {
        **env,
        "FIREBREAK_STACK_DIR": str(stack.folder),
        "FIREBREAK_KAFKA_PORT": kafka_port,
        "FIREBREAK_REDIS_PORT": redis_port,
        **extra,
    }


def pids(stack: Stack) -> dict[str, str]:
    return {name: (stack.folder / f"{name}.pid").read_text().strip() for name in ("kafka", "redis")}


def test_up_again_starts_nothing_new(stack: Stack):
    before = pids(stack)
    result = subprocess.run([SCRIPT, "up"], env=script_env(stack), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    assert pids(stack) == before


def test_status_reports_both_services_running(stack: Stack):
    result = subprocess.run([SCRIPT, "status"], env=script_env(stack), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "running" in lines["kafka"] and "running" in lines["redis"]


def test_existing_services_are_used_not_started(stack: Stack, tmp_path):
    env = script_env(
        stack,
        FIREBREAK_STACK_DIR=str(tmp_path),
        FIREBREAK_KAFKA_BOOTSTRAP=stack.bootstrap,
        FIREBREAK_REDIS_URL=stack.redis_url,
    )
    result = subprocess.run([SCRIPT, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nothing started" in result.stderr
    assert not list(tmp_path.glob("*.pid"))


def test_an_existing_service_that_does_not_answer_is_an_error(stack: Stack, tmp_path):
    env = script_env(stack, FIREBREAK_STACK_DIR=str(tmp_path), FIREBREAK_REDIS_URL="redis://127.0.0.1:1/0")
    result = subprocess.run([SCRIPT, "up"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "does not answer" in result.stderr
