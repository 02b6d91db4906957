"""deploy/'s Prometheus rules, their unit tests and the Alertmanager config, checked by the real tools."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT / "deploy")


def test_firebreak_rules_are_valid_and_their_unit_tests_pass(peers_installed: None):
    checked = run("promtool", "check", "rules", "prometheus/firebreak-rules.yml")
    assert checked.returncode == 0 and "SUCCESS: 8 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = run("promtool", "test", "rules", "prometheus/firebreak-rules.test.yml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_unit_tests_of_the_rules_can_fail(peers_installed: None, tmp_path):
    """A positive control: the same rule tests against a rule file with a broken threshold fail."""
    rules = (ROOT / "deploy/prometheus/firebreak-rules.yml").read_text().replace("> 0.05", "> 0.5")
    (tmp_path / "firebreak-rules.yml").write_text(rules)
    (tmp_path / "firebreak-rules.test.yml").write_text(
        (ROOT / "deploy/prometheus/firebreak-rules.test.yml").read_text()
    )
    failed = subprocess.run(
        ["promtool", "test", "rules", "firebreak-rules.test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert failed.returncode != 0 and "FirebreakIngestErrors" in failed.stdout + failed.stderr


def test_the_kafka_rule_test_fails_when_the_worker_exports_ingest_kafka_up(peers_installed: None, tmp_path):
    """A positive control for the both-jobs case: a worker exporting `firebreak_ingest_kafka_up 0`, as it did
    while one registry served both processes, makes FirebreakKafkaUnavailable fire and the rule test fail."""
    folder = ROOT / "deploy/prometheus"
    worker_series = '      - series: \'firebreak_alerts_processed_total{job="firebreak-worker"'
    tests = (folder / "firebreak-rules.test.yml").read_text()
    assert worker_series in tests
    shared = tests.replace(
        worker_series,
        '      - series: \'firebreak_ingest_kafka_up{job="firebreak-worker", '
        "instance=\"127.0.0.1:9465\"}'\n        values: '0x10'\n" + worker_series,
        1,
    )
    (tmp_path / "firebreak-rules.yml").write_text((folder / "firebreak-rules.yml").read_text())
    (tmp_path / "firebreak-rules.test.yml").write_text(shared)
    failed = subprocess.run(
        ["promtool", "test", "rules", "firebreak-rules.test.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert failed.returncode != 0 and "FirebreakKafkaUnavailable" in failed.stdout + failed.stderr


def test_alertmanager_configs_are_valid(peers_installed: None):
    for path in ("alertmanager/alertmanager.yml", "compose/alertmanager.yml"):
        checked = run("amtool", "check-config", path)
        assert checked.returncode == 0 and "1 receivers" in checked.stdout, checked.stdout + checked.stderr


def test_prometheus_config_is_valid(peers_installed: None):
    checked = run("promtool", "check", "config", "prometheus/prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
