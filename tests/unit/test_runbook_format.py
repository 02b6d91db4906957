"""The runbook format, matching, params and the sandbox: what an author writes and what labels cannot do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from actions.loader import load_runbooks
from actions.matching import context, matches, render_params, run_id, triggered
from actions.templates import RenderError, evaluate, render
from adapters.yamlfile import ConfigFileError
from correlation.topology import Service, Topology
from schemas import Incident, IncidentAlert, IncidentEvent, IncidentEventKind, IncidentStatus
from schemas.runbook import Runbook, Trigger

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def incident(labels: dict[str, str], severity: str = "critical", **more: object) -> Incident:
    alert = IncidentAlert(fingerprint="f1", status="firing", labels=labels, starts_at=NOW)
    return Incident(
        id="inc-1",
        correlation_key="k",
        group_labels={"alertname": labels.get("alertname", "")},
        status=IncidentStatus.triggered,
        title="t",
        severity=severity,
        opened_at=NOW,
        updated_at=NOW,
        seq=2,
        alerts={"f1": alert},
        **more,
    )


def runbook(**fields: object) -> Runbook:
    base: dict[str, object] = {
        "name": "rb",
        "description": "d",
        "owner": "team",
        "on": ["opened"],
        "steps": [{"id": "a", "annotate": {"text": "x"}}],
    }
    return Runbook.model_validate({**base, **fields})


def event(kind: IncidentEventKind = IncidentEventKind.opened, severity: str | None = "critical") -> IncidentEvent:
    return IncidentEvent(
        event_id="e1",
        kind=kind,
        incident_id="inc-1",
        correlation_key="k",
        group_labels={},
        seq=1,
        at=NOW,
        severity=severity,
    )


def test_the_shipped_runbooks_load():
    names = {r.name for r in load_runbooks(ROOT / "runbooks")}
    assert names == {"restart-service", "clear-disk", "post-context", "chat-on-resolve"}


def test_on_is_a_key_not_a_boolean(tmp_path: Path):
    (tmp_path / "r.yaml").write_text(
        "name: r\ndescription: d\nowner: o\non: [opened]\nsteps:\n  - id: a\n    annotate: {text: x}\n"
    )
    assert load_runbooks(tmp_path)[0].on == [Trigger.opened]


def test_schema_errors_name_file_and_line(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text(
        "name: bad\ndescription: d\nowner: o\non: [opened]\nsteps:\n  - id: a\n    annotate: {text: x}\n    wait: {for: 5s}\n"
    )
    with pytest.raises(ConfigFileError) as info:
        load_runbooks(tmp_path)
    assert "bad.yaml:6: steps.0: " in str(info.value) and "exactly one action" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://{{ labels.host }}/restart",
        "http://api.internal:{{ labels.port }}/x",
        "{{ labels.scheme }}://api.internal/x",
    ],
)
def test_scheme_host_and_port_must_be_literal(url: str):
    with pytest.raises(ValidationError, match="written literally"):
        runbook(steps=[{"id": "a", "http": {"url": url}}])


def test_path_and_query_may_be_templated():
    rb = runbook(
        steps=[
            {"id": "a", "http": {"url": "https://api.internal/v1/{{ labels.service | urlencode }}?q={{ params.x }}"}}
        ]
    )
    assert rb.steps[0].action == "http"


def test_program_must_be_literal_and_step_ids_unique():
    with pytest.raises(ValidationError, match="argv\\[0\\]"):
        runbook(steps=[{"id": "a", "command": {"argv": ["{{ labels.prog }}"]}}])
    with pytest.raises(ValidationError, match="unique"):
        runbook(steps=[{"id": "a", "annotate": {"text": "x"}}, {"id": "a", "annotate": {"text": "y"}}])


def test_matching_by_matchers_severity_service_and_team():
    topo = Topology(services=(Service(name="checkout", team="payments"),))
    inc = incident({"alertname": "HighLatency", "service": "checkout"})
    assert matches(runbook(match={"matchers": ['alertname=~"High.*"']}), inc, "critical", topo, "service")
    assert not matches(runbook(match={"matchers": ['alertname="DiskFull"']}), inc, "critical", topo, "service")
    assert not matches(runbook(match={"severity": ["warning"]}), inc, "critical", topo, "service")
    assert matches(runbook(match={"service": ["checkout", "cart"]}), inc, "critical", topo, "service")
    assert matches(runbook(match={"team": ["payments"]}), inc, "critical", topo, "service")
    assert not matches(runbook(match={"team": ["storage"]}), inc, "critical", topo, "service")


def test_triggers_follow_the_incident_event_kind():
    inc = incident({"alertname": "A"})
    on_open, on_resolve = runbook(name="a"), runbook(name="b", on=["resolved"])
    assert triggered([on_open, on_resolve], event(), inc, Topology(), "service") == [on_open]
    assert triggered([on_open, on_resolve], event(IncidentEventKind.resolved), inc, Topology(), "service") == [
        on_resolve
    ]
    assert triggered([on_open, on_resolve], event(IncidentEventKind.alert_added), inc, Topology(), "service") == []


def test_run_ids_are_stable_per_trigger_event():
    assert run_id("inc-1", "rb", "e1") == run_id("inc-1", "rb", "e1")
    assert run_id("inc-1", "rb", "e1") != run_id("inc-1", "rb", "e2")


def test_params_render_once_and_must_match_their_pattern():
    rb = runbook(
        params={"service": {"value": "{{ labels.service }}", "pattern": "[a-z-]+"}, "path": "/srv/{{ params.service }}"}
    )
    ctx = context(incident({"alertname": "A", "service": "checkout"}), Topology(), "service")
    assert render_params(rb, ctx) == {"service": "checkout", "path": "/srv/checkout"}
    evil = context(incident({"alertname": "A", "service": "x; rm -rf /"}), Topology(), "service")
    with pytest.raises(RenderError, match="params.service: .* does not match the pattern"):
        render_params(rb, evil)


def test_a_missing_label_is_an_error_not_an_empty_string():
    ctx = context(incident({"alertname": "A"}), Topology(), "service")
    with pytest.raises(RenderError, match="has no attribute .service."):
        render("restart {{ labels.service }}", ctx)


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ self._TemplateReference__context }}",
    ],
)
def test_template_payloads_in_labels_stay_data(payload: str):
    ctx = context(incident({"alertname": "A", "service": payload}), Topology(), "service")
    assert render("svc={{ labels.service }}", ctx) == f"svc={payload}"  # printed as text, never evaluated
    assert evaluate("labels.service == " + repr(payload), ctx)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ [].__class__.__base__.__subclasses__() }}",
        "{{ labels.__class__ }}",
        "{{ 'x' * 100000000 }}",
        "{{ 9 ** 9999999 }}",
        "{{ labels.update({'a': 'b'}) }}",
    ],
)
def test_template_escapes_are_refused_by_the_sandbox(template: str):
    ctx = context(incident({"alertname": "A"}), Topology(), "service")
    with pytest.raises(RenderError):
        render(template, ctx)


def test_outputs_are_capped():
    ctx = {"n": list(range(100_000))}
    with pytest.raises(RenderError, match="more than"):
        render("{% for i in n %}{{ i }},{% endfor %}", ctx)


def test_risk_classes_default_low_and_approvals_need_risk_high():
    from schemas.runbook import Step

    assert Step.model_validate({"id": "a", "annotate": {"text": "x"}}).gate is None
    high = Step.model_validate({"id": "b", "risk": "high", "command": {"argv": ["true"]}})
    assert high.gate is not None and (high.gate.required, high.gate.expires.total_seconds()) == (1, 1800)
    with pytest.raises(ValidationError, match="`approvals` applies to `risk: high` steps"):
        Step.model_validate({"id": "c", "approvals": {"required": 2}, "command": {"argv": ["true"]}})
    with pytest.raises(ValidationError, match="cannot be `risk: high`"):
        Step.model_validate({"id": "d", "risk": "high", "wait": {"for": "1s"}})
    with pytest.raises(ValidationError):
        Step.model_validate({"id": "e", "risk": "high", "approvals": {"required": 3}, "command": {"argv": ["true"]}})
