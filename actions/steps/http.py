"""`http` steps: one request to an allow-listed host (actions/outbound.py), its body rendered as JSON.

Output: `{status, body (parsed JSON, else the text), truncated, seconds}`. Success: a status in
`expect_status`, or any 2xx when it is empty; otherwise the step fails with `http_status_reason` (retried
for 5xx, 408 and 429).
Lint: unset secrets, the host off the allow-list, and URL values no param `pattern` constrains (warnings).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from actions.notify import secret_value
from actions.outbound import Refused
from actions.steps.base import StepCall, StepFailed, StepKind, StepProblem
from actions.templates import is_template, names_used, params_referenced, parse_problem, render, render_data
from actions.urls import URL_ENV, render_url
from adapters.secrets import Secrets
from schemas.errors import http_status_reason
from schemas.fields import SecretRef
from schemas.runbook import Param
from schemas.steps import HttpStep

if TYPE_CHECKING:
    from actions.lint import LintEnv


def _header_value(value: str | SecretRef, ctx: dict[str, Any], secrets: Secrets | None) -> str:
    if isinstance(value, SecretRef):
        return secret_value(value, secrets) if secrets else f"<secret {value.secret}>"
    return render(value, ctx)


def _secret_refs(value: Any, loc: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    if isinstance(value, SecretRef):
        return [(loc, value.secret)]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _secret_refs(v, (*loc, k))]
    return []


class Http(StepKind[HttpStep]):
    """Runs `http` steps."""

    step = HttpStep
    url_templates = (("http", "url"),)

    async def run(self, step: HttpStep, ctx: dict[str, Any], call: StepCall) -> Any:
        spec, s = step.http, call.services
        url = secret_value(spec.url, s.secrets) if isinstance(spec.url, SecretRef) else render_url(spec.url, ctx)
        headers = {k: _header_value(v, ctx, s.secrets) for k, v in spec.headers.items()}
        secret = frozenset(k for k, v in spec.headers.items() if isinstance(v, SecretRef))
        body = render_data(spec.json_body, ctx)
        started = time.monotonic()
        result = await s.http.request(
            spec.method, url, headers=headers, json=body, timeout=step.timeout.total_seconds(), secret_headers=secret
        )
        parsed = result.json()
        output = {
            "status": result.status,
            "body": parsed if parsed is not None else result.body,
            "truncated": result.truncated,
            "seconds": round(time.monotonic() - started, 3),
        }
        ok = result.status in spec.expect_status if spec.expect_status else 200 <= result.status < 300
        if not ok:
            raise StepFailed(
                f"HTTP {result.status} from {result.url}", output, reason=http_status_reason(result.status)
            )
        return output

    def describe(self, step: HttpStep, ctx: dict[str, Any]) -> dict[str, Any]:
        spec = step.http
        url = f"<secret {spec.url.secret}>" if isinstance(spec.url, SecretRef) else render_url(spec.url, ctx)
        return {
            "method": spec.method,
            "url": url,
            "headers": {k: _header_value(v, ctx, None) for k, v in spec.headers.items()},
            "json": render_data(spec.json_body, ctx),
        }

    def lint(self, step: HttpStep, env: LintEnv, params: dict[str, str | Param]) -> list[StepProblem]:
        spec = step.http
        found = [
            StepProblem(
                loc, f"secret {name} is not set; set FIREBREAK_SECRET_{name} or add the file to the secrets folder"
            )
            for loc, name in _secret_refs({"url": spec.url, "headers": spec.headers}, ("http",))
            if not env.secrets.known(name)
        ]
        if isinstance(spec.url, str):
            try:
                env.allow.check(spec.url.split("{", 1)[0])
            except Refused as exc:
                found.append(StepProblem(("http", "url"), str(exc)))
            found += _url_values(spec.url, params)
        return found


def _has_pattern(spec: str | Param | None) -> bool:
    return isinstance(spec, Param) and spec.pattern is not None


def _url_values(url: str, params: dict[str, str | Param]) -> list[StepProblem]:
    """Warnings about each value a URL template reads that no `pattern` constrains (none for a template that does
    not parse: lint reports its syntax for every template of the step)."""
    if not is_template(url) or parse_problem(url) is not None:
        return []
    unguarded = sorted(name for name in params_referenced(url, False) if not _has_pattern(params.get(name)))
    direct = sorted(names_used(url, env=URL_ENV) - {"params"})
    found = [
        StepProblem(
            ("http", "url"),
            f"the URL reads params.{name}, which has no `pattern`: a label chooses where the "
            f"request goes on the allowed host; give params.{name} a `pattern` of the values it may take",
            "warning",
        )
        for name in unguarded
    ]
    if direct:
        found.append(
            StepProblem(
                ("http", "url"),
                f"the URL reads {', '.join(direct)} directly: a label chooses where the "
                "request goes on the allowed host; declare a param with a `pattern` and use it in the URL "
                "instead",
                "warning",
            )
        )
    return found
