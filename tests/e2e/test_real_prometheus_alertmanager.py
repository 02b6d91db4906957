"""End to end with the real tools Firebreak's users run: Debian's Prometheus and Alertmanager, configured from
deploy/ (only loopback ports, intervals and the token path are rewritten).

- Prometheus scrapes Firebreak's ingest and worker; the counters it stores move by exactly what the test did.
- A Prometheus rule fires on a gauge the test controls (a tiny exporter in this process), the real
  Alertmanager posts it to Firebreak's webhook, an incident opens, a runbook runs and a page reaches the
  local receiver; the gauge drops, Prometheus and Alertmanager resolve it, and the incident resolves.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from tests.conftest import ROOT, TOKEN, Ingest, Process, Stack, Standin, free_port, start_ready_worker, wait_until

pytestmark = pytest.mark.e2e

RUN = uuid.uuid4().hex[:8]
SERVICE = f"e2e-queue-{RUN}"


class Peer:
    """A Prometheus or Alertmanager process on loopback."""

    def __init__(self, name: str, command: list[str], port: int, log: Path) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        self.log = log

        def ready() -> bool:
            assert self.process.poll() is None, f"{name} exited:\n{log.read_text()[-3000:]}"
            try:
                return requests.get(self.url + "/-/ready", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(ready, 60, f"{name} to be ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def exporter() -> Iterator[tuple[Gauge, int]]:
    registry = CollectorRegistry()
    gauge = Gauge("e2e_queue_depth", "Depth of a queue the e2e test controls.", registry=registry)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield gauge, port
    server.shutdown()


@pytest.fixture(scope="module")
def receiver(stack: Stack) -> Iterator[Standin]:
    server = Standin(stack, "e2e-receiver.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(stack: Stack, receiver: Standin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, int]]:
    folder = tmp_path_factory.mktemp("e2e-config")
    (folder / "runbooks").mkdir()
    (folder / "runbooks" / "drain-queue.yaml").write_text(f"""name: drain-queue
description: Ask the queue service to shed load when its backlog alert fires.
owner: e2e
on: [opened]
match: {{matchers: ['alertname="E2EQueueBacklog"', 'service="{SERVICE}"']}}
steps:
  - id: shed
    http:
      url: "{receiver.base}/hooks/e2e-runbook"
      json: {{incident: "{{{{ incident.id }}}}", depth: "{{{{ incident.alerts[0].annotations.summary }}}}"}}
""")
    (folder / "notifications.yaml").write_text(f"""channels:
  e2e-pager: {{type: webhook, url: "{receiver.base}/hooks/e2e-page"}}
escalation_policies:
  e2e: {{levels: [{{targets: [{{channel: e2e-pager}}]}}]}}
routes:
  - {{matchers: ['alertname="E2EQueueBacklog"', 'service="{SERVICE}"'], policy: e2e}}
  - {{policy: null}}
""")
    process, port = start_ready_worker(
        stack,
        "worker-e2e",
        FIREBREAK_RUNBOOKS_DIR=str(folder / "runbooks"),
        FIREBREAK_NOTIFICATIONS_FILE=str(folder / "notifications.yaml"),
        FIREBREAK_ACTIONS_ALLOWED_HOSTS=receiver.base.removeprefix("http://"),
        FIREBREAK_PAGER_POLL_SECONDS="0.2",
    )
    yield process, port
    process.stop()


@pytest.fixture(scope="module")
def peers(
    peers_installed: None,
    stack: Stack,
    ingest: Ingest,
    worker: tuple[Process, int],
    exporter: tuple[Gauge, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Peer]]:
    folder = tmp_path_factory.mktemp("peers")
    ingest_hostport = ingest.url.removeprefix("http://")
    am_port, prom_port = free_port(), free_port()

    # Prometheus: deploy/'s file with this session's ports, 1 s intervals, and the test's own rule added.
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{am_port}"]
    targets = {"firebreak-ingest": ingest_hostport, "firebreak-worker": f"127.0.0.1:{worker[1]}"}
    for job in config["scrape_configs"]:
        job["static_configs"][0]["targets"] = [targets[job["job_name"]]]
    config["scrape_configs"].append(
        {"job_name": "e2e-queue", "static_configs": [{"targets": [f"127.0.0.1:{exporter[1]}"]}]}
    )
    shutil.copy(ROOT / "deploy/prometheus/firebreak-rules.yml", folder / "firebreak-rules.yml")
    (folder / "e2e-rules.yml").write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "e2e",
                        "rules": [
                            {
                                "alert": "E2EQueueBacklog",
                                "expr": "e2e_queue_depth > 10",
                                "labels": {"severity": "critical", "service": SERVICE},
                                "annotations": {"summary": "queue depth {{ $value }}"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    config["rule_files"] = ["firebreak-rules.yml", "e2e-rules.yml"]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run(
        ["promtool", "check", "config", str(folder / "prometheus.yml")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # Alertmanager: deploy/'s file pointed at this ingest, with the token in a file and short waits.
    am = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    (folder / "token").write_text(TOKEN)
    hook = am["receivers"][0]["webhook_configs"][0]
    hook["url"] = f"{ingest.url}/api/v1/alerts/alertmanager"
    hook["http_config"]["authorization"]["credentials_file"] = str(folder / "token")
    am["route"].update(group_wait="1s", group_interval="1s")
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(am))

    running = {
        "alertmanager": Peer(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={folder / 'alertmanager.yml'}",
                f"--storage.path={folder / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            am_port,
            stack.folder / "alertmanager.log",
        ),
        "prometheus": Peer(
            "prometheus",
            [
                "prometheus",
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            prom_port,
            stack.folder / "prometheus.log",
        ),
    }
    yield running
    for peer in running.values():
        peer.stop()


def query(prometheus: Peer, expr: str) -> list[dict]:
    answer = requests.get(prometheus.url + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def scalar(prometheus: Peer, expr: str) -> float | None:
    result = query(prometheus, expr)
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_counters_that_move_by_what_happened(peers: dict[str, Peer], ingest: Ingest):
    prometheus = peers["prometheus"]
    wait_until(
        lambda: scalar(prometheus, 'sum(up{job=~"firebreak-.*"})') == 2, 60, "Prometheus to scrape ingest and worker"
    )
    received = 'sum(firebreak_alerts_received_total{source="generic"}) or vector(0)'
    processed = "sum(firebreak_alerts_processed_total) or vector(0)"
    time.sleep(2)  # two scrapes after anything earlier
    before_in, before_done = scalar(prometheus, received), scalar(prometheus, processed)
    alerts = [
        {"labels": {"alertname": "E2ECounter", "service": f"counter-{RUN}", "n": str(n), "severity": "info"}}
        for n in range(7)
    ]
    assert ingest.post("/api/v1/alerts", json.dumps(alerts)).status_code == 202
    wait_until(lambda: scalar(prometheus, received) == before_in + 7, 30, "Prometheus to see 7 more alerts received")
    wait_until(
        lambda: scalar(prometheus, processed) == before_done + 7, 30, "Prometheus to see the worker process them"
    )
    time.sleep(2)
    assert scalar(prometheus, received) == before_in + 7 and scalar(prometheus, processed) == before_done + 7

    # The Grafana dashboard's every query is valid PromQL for this Prometheus, over these metrics.
    dashboard = json.loads((ROOT / "deploy/grafana/firebreak.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            query(prometheus, target["expr"])  # asserts status success
    wait_until(
        lambda: bool(query(prometheus, 'max by (severity) (firebreak_open_incidents{severity="info"}) >= 1')),
        30,
        "the worker to report the open incident these alerts made",
    )
    spec = ingest.get("/openapi.json", token=None)
    assert spec.status_code == 200 and "/api/v1/alerts/alertmanager" in spec.json()["paths"]


def test_a_real_rule_through_alertmanager_opens_runs_pages_and_resolves(
    peers: dict[str, Peer], ingest: Ingest, exporter: tuple[Gauge, int], receiver: Standin
):
    prometheus, gauge = peers["prometheus"], exporter[0]

    def incident() -> dict | None:
        found = ingest.get("/api/v1/incidents?limit=1000").json()["incidents"]
        return next((i for i in found if i["group_labels"].get("service") == SERVICE), None)

    gauge.set(50)
    # Opened first, then its alert joins (two events): wait for both to reach the read model.
    wait_until(lambda: bool((incident() or {}).get("alerts")), 90, "the rule to fire and the incident to open")
    opened = incident()
    assert (
        opened is not None and opened["title"] == f"E2EQueueBacklog on {SERVICE}" and opened["severity"] == "critical"
    )
    [alert] = opened["alerts"].values()
    assert alert["labels"]["job"] == "e2e-queue" and alert["annotations"]["summary"] == "queue depth 50"

    wait_until(
        lambda: any(
            r["status"] == "succeeded" for r in ingest.get(f"/api/v1/runs?incident={opened['id']}").json()["runs"]
        ),
        30,
        "the runbook to run",
    )
    assert [r["body"]["incident"] for r in receiver.requests("/hooks/e2e-runbook")] == [opened["id"]]
    wait_until(lambda: len(receiver.requests("/hooks/e2e-page", opened["id"])) == 1, 30, "the page")
    page = receiver.requests("/hooks/e2e-page", opened["id"])[0]["body"]
    assert page["kind"] == "page" and page["title"] == f"[CRITICAL] E2EQueueBacklog on {SERVICE}"

    gauge.set(0)
    wait_until(lambda: incident()["status"] == "resolved", 90, "Prometheus and Alertmanager to resolve the alert")
    assert incident()["resolved_by"] == "firebreak"

    # The latency from the alert's startsAt to the incident, as Prometheus has it from the worker's histogram.
    wait_until(
        lambda: (scalar(prometheus, "sum(firebreak_alert_to_incident_seconds_count)") or 0) >= 1,
        30,
        "Prometheus to scrape the alert-to-incident histogram",
    )
    lines = []
    for q in ("0.5", "0.9", "0.99"):
        expr = f"histogram_quantile({q}, sum by (le) (firebreak_alert_to_incident_seconds_bucket))"
        value = scalar(prometheus, expr)
        assert value is not None and not math.isnan(value) and 0 <= value <= 60, (expr, value)
        lines.append(f"{expr} = {value:.3f}")
    count = scalar(prometheus, "sum(firebreak_alert_to_incident_seconds_count)")
    total = scalar(prometheus, "sum(firebreak_alert_to_incident_seconds_sum)")
    lines.append(
        f"sum(firebreak_alert_to_incident_seconds_sum) / sum(firebreak_alert_to_incident_seconds_count) = {total / count:.3f}"
    )
    print("\n" + "\n".join(lines))
