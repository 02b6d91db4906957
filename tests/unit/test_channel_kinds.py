"""Channel kinds: one module per `type`, found through one registry. Every kind sends, describes and lints;
the registry and the notifications file's union name the same kinds; `Channels` dispatches by `type`."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import smtplib
import sys
import types
from pathlib import Path
from typing import Any, get_args

import pytest

from actions.channels import CHANNELS, ChannelKind, ChannelLintEnv, Channels, Message, SmtpSettings
from actions.outbound import AllowList, HttpResult, OutboundHttp
from adapters.secrets import Secrets
from schemas.channels import Channel
from schemas.notification import NotificationsFile
from tests.factories import INCIDENT_CONTEXT as INCIDENT

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"FIREBREAK_SECRET_URL": "https://hooks.example.com/slack", "FIREBREAK_SECRET_KEY": "key-123"}
ALLOWED = ["hooks.example.com", "events.pagerduty.com", "api.opsgenie.com"]


class Recorder(OutboundHttp):
    """Outbound HTTP that records each request and answers 202."""

    def __init__(self) -> None:
        super().__init__(AllowList.parse(ALLOWED))
        self.sent: list[dict[str, Any]] = []

    async def request(self, method: str, url: str, **kw: Any) -> HttpResult:
        self.sent.append({"method": method, "url": url, **kw})
        return HttpResult(202, url, "{}", False, "application/json")


class FakeSMTP:
    sent: list[Any] = []

    def __init__(self, host: str, port: int, timeout: float) -> None:
        pass

    def __enter__(self) -> FakeSMTP:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def send_message(self, mail: Any) -> None:
        FakeSMTP.sent.append(mail)


def _union_types() -> set[str]:
    union = get_args(Channel)[0]
    return {get_args(model.model_fields["type"].annotation)[0] for model in get_args(union)}


def test_the_registry_and_the_notifications_file_know_the_same_kinds():
    assert set(CHANNELS) == _union_types(), "a kind needs its model in schemas/channels and its line in registry.py"
    for type_, kind in CHANNELS.items():
        assert get_args(kind.params.model_fields["type"].annotation) == (type_,), f"{type_} is sent by {kind!r}"


@pytest.mark.parametrize("type_", sorted(CHANNELS))
def test_every_kind_sends_describes_and_lints(type_: str):
    kind = CHANNELS[type_]
    assert isinstance(kind, ChannelKind) and not inspect.isabstract(type(kind))
    assert inspect.iscoroutinefunction(kind.send)
    assert callable(kind.describe) and callable(kind.lint)
    module = inspect.getmodule(type(kind))
    assert (type(kind).__doc__ or "").strip() and (module.__doc__ or "").strip(), (
        f"{type_}: say what it sends, and its source"
    )


# (settings, what the receiver gets: the URL the JSON goes to, or the SMTP recipients)
DISPATCH = [
    ({"type": "webhook", "url": "https://hooks.example.com/h"}, "https://hooks.example.com/h"),
    ({"type": "slack", "url": {"secret": "URL"}}, "https://hooks.example.com/slack"),
    ({"type": "pagerduty", "routing_key": {"secret": "KEY"}}, "https://events.pagerduty.com/v2/enqueue"),
    ({"type": "opsgenie", "api_key": {"secret": "KEY"}}, "https://api.opsgenie.com/v2/alerts"),
    ({"type": "email", "from": "fb@example.com", "to": ["ops@example.com"]}, "smtp:ops@example.com"),
]


@pytest.mark.parametrize(("settings", "receiver"), DISPATCH, ids=[s["type"] for s, _ in DISPATCH])
def test_channels_send_through_the_kind_of_their_type(
    settings: dict[str, Any], receiver: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(smtplib, "SMTP", FakeSMTP)
    FakeSMTP.sent = []
    http = Recorder()
    config = NotificationsFile.model_validate({"channels": {"c": settings}})
    channels = Channels(dict(config.channels), http, Secrets(None, SECRETS), SmtpSettings("mx", 25, False, None, None))
    message = Message(kind="page", dedup_key="inc-1/l1", incident=INCIDENT, level=1)
    result = asyncio.run(channels.send("c", message))
    if receiver.startswith("smtp:"):
        assert [m["To"] for m in FakeSMTP.sent] == [receiver.removeprefix("smtp:")] and result == {
            "to": ["ops@example.com"]
        }
    else:
        assert [r["url"] for r in http.sent] == [receiver] and result["status"] == 202
        assert json.loads(http.sent[0]["data"])  # a JSON body


def test_dispatch_goes_through_the_registry(monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple[str, str]] = []

    class Stand(ChannelKind[Any]):
        params = CHANNELS["slack"].params

        async def send(self, out: Any, spec: Any, outgoing: Any) -> dict[str, Any]:
            """Records the call."""
            calls.append((spec.type, outgoing.rendered.title))
            return {"stood_in": True}

        def describe(self, spec: Any) -> str:
            """A fixed line."""
            return "stand-in"

        def lint(self, spec: Any, env: Any) -> list[str]:
            """No problems."""
            return []

    monkeypatch.setitem(CHANNELS, "slack", Stand())
    config = NotificationsFile.model_validate(
        {"channels": {"team": {"type": "slack", "url": "https://hooks.example.com/x"}}}
    )
    channels = Channels(dict(config.channels), Recorder(), Secrets(None, {}), None)
    result = asyncio.run(channels.send("team", Message(kind="page", dedup_key="k", incident=INCIDENT, level=1)))
    assert result == {"stood_in": True} and calls == [("slack", "[CRITICAL] Down")]
    assert channels.describe("team") == "stand-in"


# (settings, describe's line, lint's problems with no secrets set, no SMTP and only hooks.example.com allowed)
DESCRIBE_AND_LINT = [
    (
        {
            "type": "webhook",
            "url": "https://hooks.example.com/h",
            "hmac_secret": "SIGN",
            "headers": {"A": {"secret": "TOKEN"}},
        },
        "webhook: JSON POSTed to https://hooks.example.com/h, signed with secret SIGN",
        ["secret TOKEN is not set", "secret SIGN is not set"],
    ),
    (
        {"type": "webhook", "url": "https://elsewhere.example.com/h"},
        "webhook: JSON POSTed to https://elsewhere.example.com/h",
        ["host elsewhere.example.com:443 is not on the allow-list"],
    ),
    (
        {"type": "slack", "url": {"secret": "URL"}},
        "slack: Block Kit to the incoming webhook <secret URL>",
        ["secret URL is not set"],
    ),
    (
        {"type": "email", "from": "fb@example.com"},
        "email: from fb@example.com to the contact's address, over SMTP",
        ["email needs an SMTP server"],
    ),
    (
        {"type": "pagerduty", "routing_key": {"secret": "KEY"}},
        "pagerduty: Events API v2 at https://events.pagerduty.com/v2/enqueue, routing key <secret KEY>",
        ["secret KEY is not set", "host events.pagerduty.com:443 is not on the allow-list"],
    ),
    (
        {"type": "opsgenie", "api_key": {"secret": "KEY"}, "url": "https://hooks.example.com/og"},
        "opsgenie: Alert API at https://hooks.example.com/og, key <secret KEY>",
        ["secret KEY is not set"],
    ),
]


@pytest.mark.parametrize(("settings", "line", "problems"), DESCRIBE_AND_LINT)
def test_each_kind_describes_itself_and_finds_its_problems(settings: dict[str, Any], line: str, problems: list[str]):
    config = NotificationsFile.model_validate({"channels": {"c": settings}})
    channels = Channels(dict(config.channels), Recorder(), Secrets(None, {}), None)
    assert channels.describe("c") == line
    found = channels.lint(ChannelLintEnv(AllowList.parse(["hooks.example.com"]), Secrets(None, {}), smtp=False))
    assert [p.split(";")[0] for p in found.get("c", [])] == problems


def test_the_documented_example_kind_runs_as_written(monkeypatch: pytest.MonkeyPatch):
    """docs/reference/channels.md adds ntfy in two modules; they must work as printed, at the length printed."""
    settings_src, sender_src = re.findall(
        r"```python\n(.*?)```", (ROOT / "docs/reference/channels.md").read_text(), re.S
    )
    modules = {}
    for name, source in (("schemas.channels.ntfy", settings_src), ("actions.channels.ntfy", sender_src)):
        module = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, module)
        exec(compile(source, name.replace(".", "/") + ".py", "exec"), module.__dict__)
        modules[name] = module
    assert (len(settings_src.splitlines()), len(sender_src.splitlines())) == (15, 26), "the page states the line counts"
    monkeypatch.setitem(CHANNELS, "ntfy", modules["actions.channels.ntfy"].Ntfy())
    spec = modules["schemas.channels.ntfy"].NtfyChannel(type="ntfy", topic="oncall", url="https://hooks.example.com")
    http = Recorder()
    channels = Channels({"phone": spec}, http, Secrets(None, {}), None)
    assert asyncio.run(channels.send("phone", Message(kind="page", dedup_key="k", incident=INCIDENT, level=1))) == {
        "status": 202
    }
    body = json.loads(http.sent[0]["data"])
    assert (
        http.sent[0]["url"] == "https://hooks.example.com"
        and body["topic"] == "oncall"
        and body["title"] == "[CRITICAL] Down"
    )
    assert channels.describe("phone") == "ntfy: topic oncall on https://hooks.example.com"
    assert channels.lint(ChannelLintEnv(AllowList.parse([]), Secrets(None, {}), smtp=False))["phone"][0].startswith(
        "host "
    )


def test_runbook_lint_checks_the_channels_of_the_notifications_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each channel kind's `lint` runs in `firebreak runbook lint`: a channel whose host is off the allow-list, or
    whose secret is not set, is an error there, before a page is dead-lettered for it."""
    from click.testing import CliRunner

    from firebreak.cli import main

    (tmp_path / "runbooks").mkdir()
    notifications = tmp_path / "notifications.yaml"
    notifications.write_text(
        "channels:\n"
        "  hook: {type: webhook, url: 'https://hooks.example.net/page'}\n"
        "  chat: {type: slack, url: {secret: SLACK_URL}}\n"
        "  fine: {type: webhook, url: 'https://pager.example.com/in'}\n"
    )
    for name, value in {
        "FIREBREAK_RUNBOOKS_DIR": str(tmp_path / "runbooks"),
        "FIREBREAK_NOTIFICATIONS_FILE": str(notifications),
        "FIREBREAK_ACTIONS_ALLOWED_HOSTS": "pager.example.com,hooks.slack.com",
        "FIREBREAK_SECRETS_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FIREBREAK_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["runbook", "lint"])
    assert result.exit_code == 1, result.output
    assert f"{notifications}: channels.hook: error: host hooks.example.net" in result.output
    assert f"{notifications}: channels.chat: error: secret SLACK_URL is not set" in result.output
    assert "channels.fine" not in result.output
    assert "2 error(s)" in result.output


def test_a_channel_error_names_the_place_in_the_file_not_the_union_tag(tmp_path: Path):
    """pydantic puts the chosen `type` into an error's location (`channels.c.webhook.url`); the message names the
    document's place (`channels.c.url`) and its line."""
    from actions.loader import load_notifications
    from adapters.yamlfile import ConfigFileError

    path = tmp_path / "notifications.yaml"
    path.write_text("channels:\n  ok: {type: slack, url: 'https://hooks.slack.com/x'}\n  c: {type: webhook}\n")
    with pytest.raises(ConfigFileError) as info:
        load_notifications(path)
    assert str(info.value) == f"{path}:3: channels.c.url: Field required"
