"""deploy/: the Kubernetes manifests against the Kubernetes schemas (offline, kubernetes-validate), the
configuration they carry against Firebreak's own models, and the compose file and dashboard against what
Firebreak serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import validate
from kubernetes_validate.utils import ValidationError as K8sValidationError

from actions.loader import load_runbooks
from correlation.policy import PolicySet
from correlation.topology import Topology
from firebreak.reference import metrics_table
from firebreak.settings import Settings
from schemas.notification import NotificationsFile

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/kubernetes"
KUBERNETES_VERSION = "1.30.0"


def documents() -> list[dict]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return found


def test_manifests_are_valid_kubernetes_objects():
    core = [d for d in documents() if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {d["kind"] for d in core} >= {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"}
    for document in core:
        validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validation_can_fail():
    deployment = next(d for d in documents() if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "three"
    with pytest.raises(K8sValidationError):
        validate(broken, KUBERNETES_VERSION, strict=True)


def test_every_workload_has_probes_limits_and_no_root():
    for deployment in (d for d in documents() if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["livenessProbe"] and container["readinessProbe"], container["name"]
            assert container["resources"]["limits"]["memory"], container["name"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_config_maps_hold_configuration_firebreak_accepts(tmp_path: Path):
    maps = {d["metadata"]["name"]: d["data"] for d in documents() if d["kind"] == "ConfigMap"}
    env = {k: v for k, v in maps["firebreak-env"].items()}
    assert all(re.fullmatch(r"FIREBREAK_[A-Z0-9_]+", k) for k in env), "only settings belong in the env ConfigMap"
    Settings(**{k.removeprefix("FIREBREAK_").lower(): v for k, v in env.items()})  # every key is a known setting
    files = maps["firebreak-files"]
    PolicySet.model_validate(yaml.safe_load(files["correlation.yaml"]))
    Topology.model_validate(yaml.safe_load(files["services.yaml"]))
    notifications = NotificationsFile.model_validate(yaml.safe_load(files["notifications.yaml"]))
    for name, text in maps["firebreak-runbooks"].items():
        (tmp_path / name).write_text(text)
    for runbook in load_runbooks(tmp_path):
        assert all(s.notify is None or s.notify.channel in notifications.channels for s in runbook.steps)
    secret_refs = [
        r["secretRef"]["name"]
        for d in documents()
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        for r in c["envFrom"]
        if "secretRef" in r
    ]
    assert set(secret_refs) == {"firebreak-secrets"}  # referenced, never defined in git
    assert not [d for d in documents() if d["kind"] == "Secret"]


def test_the_service_monitor_scrapes_the_named_ports():
    monitor = next(d for d in documents() if d["kind"] == "ServiceMonitor")
    ports = {p["name"] for d in documents() if d["kind"] == "Service" for p in d["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


def test_compose_runs_every_part_and_the_dashboard_reads_real_metrics():
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    assert {"kafka", "redis", "ingest", "worker", "prometheus", "alertmanager", "grafana"} <= set(compose["services"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / "deploy" / source).exists(), source
    dashboard = json.loads((ROOT / "deploy/grafana/firebreak.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    known = set(re.findall(r"`(firebreak_[a-z_]+)`", metrics_table()))
    used = {m for e in exprs for m in re.findall(r"firebreak_[a-z_]+", e)}
    bases = {re.sub(r"_(bucket|sum|count)$", "", m) for m in used}
    assert bases <= known, f"the dashboard reads metrics Firebreak does not export: {bases - known}"
    assert len(exprs) >= 10
