"""Labels in runbook URLs: each templated value is one path segment or query value, a redirect to another
origin loses the credentials, and lint warns about URL values no `pattern` guards. In-process HTTP servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from actions.lint import lint
from actions.templates import RenderError
from actions.urls import render_url
from schemas.runbook import StepStatus
from tests.http_target import Target
from tests.unit.test_actions import go, lint_env, run, services, step

HOSTILE = ["../../hooks/x", "..%2F..%2Fhooks%2Fx", "%2e%2e/%2e%2e/hooks", "a/b?admin=1#frag", "..\\..\\hooks"]


def ctx(**labels: str) -> dict[str, Any]:
    return {"labels": labels, "params": dict(labels), "steps": {}, "incident": {"id": "inc-1"}}


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("template", ["{{ params.service }}", "{{ params.service | urlencode }}"])
def test_a_label_fills_exactly_one_path_segment(value: str, template: str):
    async def body() -> None:
        async with Target() as target:
            s = step(
                http={
                    "method": "POST",
                    "url": f"{target.base}/v1/services/{template}/restart",
                    "headers": {"Authorization": {"secret": "TOKEN", "format": "Bearer {}"}},
                }
            )
            outcome = await run(
                services([f"127.0.0.1:{target.port}"], environ={"FIREBREAK_SECRET_TOKEN": "t0k"}), s, ctx(service=value)
            )
            assert outcome.status is StepStatus.succeeded, outcome.error
            [sent] = target.raw_paths
            assert sent.split("/")[:3] == ["", "v1", "services"] and sent.split("/")[4:] == ["restart"]
            assert unquote(sent.split("/")[3]) == value

    go(body)


@pytest.mark.parametrize("value", ["..", "."])
def test_a_dot_segment_value_is_refused_before_any_request(value: str):
    async def body() -> None:
        async with Target() as target:
            s = step(http={"method": "GET", "url": f"{target.base}/v1/services/{{{{ params.service | urlencode }}}}/x"})
            outcome = await run(services([f"127.0.0.1:{target.port}"]), s, ctx(service=value))
            assert outcome.status is StepStatus.failed and "walk up the path" in outcome.error
            assert target.hits == {}

    go(body)


def test_a_query_value_cannot_add_parameters():
    url = render_url("http://h/search?q={{ labels.q }}&limit=5", ctx(q="x&admin=1#"))
    assert url == "http://h/search?q=x%26admin%3D1%23&limit=5"


def test_urlpath_is_the_explicit_opt_out_for_values_spanning_segments():
    assert (
        render_url("http://h/files/{{ params.key | urlpath }}", ctx(key="logs/a b/c%2f"))
        == "http://h/files/logs/a%20b/c%252f"
    )
    for walk in ("logs/../../hooks", "./x", "a/%2e%2e/..", ".."):
        with pytest.raises(RenderError, match="walk up the path"):
            render_url("http://h/files/{{ params.key | urlpath }}", ctx(key=walk))


def test_a_urlencoded_dict_still_builds_a_query_string():
    assert (
        render_url("http://h/x?{{ {'a': labels.q, 'b': 'c'} | urlencode }}", ctx(q="1&z=2"))
        == "http://h/x?a=1%26z%3D2&b=c"
    )


def test_a_redirect_to_another_origin_drops_the_credentials():
    async def body() -> None:
        async with Target() as target, Target() as other:
            target.redirect = {"/away": f"{other.base}/landing", "/same": "/landing"}
            allowed = [f"127.0.0.1:{target.port}", f"127.0.0.1:{other.port}"]
            headers = {
                "Authorization": {"secret": "TOKEN", "format": "Bearer {}"},
                "X-Api-Key": {"secret": "KEY"},
                "X-Request-Source": "firebreak",
            }
            environ = {"FIREBREAK_SECRET_TOKEN": "t0k", "FIREBREAK_SECRET_KEY": "k3y"}
            for path in ("/away", "/same"):
                outcome = await run(
                    services(allowed, environ=environ),
                    step(http={"method": "GET", "url": target.base + path, "headers": headers}),
                )
                assert outcome.status is StepStatus.succeeded, outcome.error
            away, same = other.headers[0], target.headers[-1]
            assert "Authorization" not in away and "X-Api-Key" not in away
            assert away["X-Request-Source"] == "firebreak"
            assert same["Authorization"] == "Bearer t0k" and same["X-Api-Key"] == "k3y"

    go(body)


def test_lint_warns_about_url_values_without_a_pattern(tmp_path: Path):
    (tmp_path / "urls.yaml").write_text("""name: urls
description: d
owner: o
on: [opened]
params:
  service: "{{ labels.service }}"
  guarded: {value: "{{ labels.service }}", pattern: "[a-z-]+"}
steps:
  - id: first
    http: {url: "http://127.0.0.1:8089/v1/{{ params.service }}/x?zone={{ labels.zone }}"}
  - id: second
    http: {url: "http://127.0.0.1:8089/v1/{{ params.guarded | urlpath }}/x"}
""")
    found = [str(f) for f in lint([tmp_path], lint_env())]
    assert any("urls.yaml:10: warning: the URL reads params.service, which has no `pattern`" in f for f in found), found
    assert any("urls.yaml:10: warning: the URL reads labels directly" in f for f in found), found
    assert not any(":12:" in f for f in found), found


def test_lint_reports_a_url_template_that_does_not_parse_and_does_not_crash(tmp_path: Path):
    """The URL checks read a template's names; one that does not parse is reported once, as lint reports every
    template's syntax, and the rest of the file is still checked."""
    (tmp_path / "broken.yaml").write_text("""name: broken
description: d
owner: o
on: [opened]
steps:
  - id: first
    http: {url: "http://127.0.0.1:8089/v1/{{ labels.service"}
""")
    found = [str(f) for f in lint([tmp_path], lint_env())]
    assert [f for f in found if ":7:" in f] == [
        f"{tmp_path / 'broken.yaml'}:7: error: template 'http://127.0.0.1:8089/v1/{{{{ labels.service' does not "
        "compile: unexpected end of template, expected 'end of print statement'."
    ], found
