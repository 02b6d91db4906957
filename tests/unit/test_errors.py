"""One error tree and one reason vocabulary: every exception Firebreak defines is a FirebreakError that keeps
the built-in base its callers catch; one rule turns an HTTP status into a Reason; deliveries and steps fail
with a Reason, and retry exactly when it is retryable."""

from __future__ import annotations

import ast
import asyncio
import importlib
import smtplib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from actions.channels import Channels, Message, SmtpSettings
from actions.delivery import Deliverer
from actions.outbound import AllowList, HttpResult, OutboundHttp, Refused
from actions.runner import Runner
from adapters.metrics import DEAD_LETTERS
from adapters.secrets import Secrets
from schemas.errors import ActionError, FirebreakError, Reason, http_status_reason
from schemas.notification import Delivery, DeliveryKind, DeliveryStatus, NotificationsFile
from schemas.runbook import Step, StepStatus
from tests.factories import INCIDENT_CONTEXT as INCIDENT
from tests.unit.test_actions import services
from tests.unit.test_delivery import RedisDown

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "correlation", "adapters", "ingest", "actions", "stream", "firebreak")
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


# -- the HTTP status rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, Reason.unavailable),
        (502, Reason.unavailable),
        (503, Reason.unavailable),
        (599, Reason.unavailable),
        (408, Reason.unavailable),
        (429, Reason.unavailable),
        (400, Reason.rejected),
        (401, Reason.rejected),
        (403, Reason.rejected),
        (404, Reason.rejected),
        (409, Reason.rejected),
        (422, Reason.rejected),
        (200, Reason.rejected),
        (301, Reason.rejected),  # a status the caller did not accept
    ],
)
def test_one_rule_turns_an_http_status_into_a_reason(status: int, reason: Reason):
    assert http_status_reason(status) is reason
    assert reason.retryable is (reason is Reason.unavailable)


@pytest.mark.parametrize(
    ("reason", "retryable"),
    [
        (Reason.timeout, True),
        (Reason.connection, True),
        (Reason.unavailable, True),
        (Reason.command_failed, True),
        (Reason.rejected, False),
        (Reason.refused_by_policy, False),
        (Reason.render, False),
        (Reason.secret_missing, False),
        (Reason.config, False),
    ],
)
def test_each_reason_says_whether_to_retry(reason: Reason, retryable: bool):
    assert reason.retryable is retryable
    assert ActionError("x", reason=reason).retryable is retryable


# -- the tree ----------------------------------------------------------------------------------------------


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) of every class in the packages whose bases name an exception: found by reading the
    source, so a class added later is checked too."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and any(
                    name.endswith(
                        (
                            "Error",
                            "Exception",
                            "Refused",
                            "Missing",
                            "Failed",
                            "Unavailable",
                            "Key",
                            "Fenced",
                            "Expired",
                            "Problem",
                        )
                    )
                    for name in (ast.unparse(base) for base in node.bases)
                ):
                    found.append((module, node.name))
    return found


EXCEPTIONS = _exception_classes()


def test_the_scan_finds_the_exceptions_it_should():
    names = {name for _, name in EXCEPTIONS}
    assert {
        "ConfigFileError",
        "ConfigError",
        "IngestError",
        "NotifyError",
        "StepFailed",
        "Refused",
        "SecretMissing",
        "Fenced",
        "FixtureFailed",
        "MatcherError",
    } <= names and len(names) >= 17


@pytest.mark.parametrize(("module", "name"), EXCEPTIONS, ids=[f"{m}.{n}" for m, n in EXCEPTIONS])
def test_every_exception_is_a_firebreak_error(module: str, name: str):
    cls = getattr(importlib.import_module(module), name)
    if issubclass(cls, BaseException):
        assert issubclass(cls, FirebreakError), f"{module}.{name}: add FirebreakError as its first base"


@pytest.mark.parametrize(
    ("module", "name", "builtin", "reason"),
    [
        ("schemas.matcher_text", "MatcherError", ValueError, None),
        ("schemas.regex", "RegexError", ValueError, None),
        ("correlation.templates", "TemplateProblem", ValueError, None),
        ("correlation.suppression", "SilenceAlreadyExpired", ValueError, None),
        ("adapters.run_store", "Fenced", RuntimeError, None),
        ("adapters.secrets", "SecretMissing", LookupError, Reason.secret_missing),
        ("adapters.yamlfile", "ConfigFileError", ValueError, None),
        ("ingest.errors", "IngestError", Exception, None),
        ("ingest.producer", "KafkaUnavailable", Exception, None),
        ("actions.command", "CommandRefused", ValueError, Reason.refused_by_policy),
        ("actions.outbound", "Refused", ValueError, Reason.refused_by_policy),
        ("actions.notify", "NotifyError", RuntimeError, None),
        ("actions.templates", "RenderError", ValueError, Reason.render),
        ("actions.steps.base", "StepFailed", Exception, None),
        ("firebreak.settings", "ConfigError", ValueError, None),
        ("firebreak.pytest_plugin", "FixtureFailed", Exception, None),
    ],
)
def test_each_keeps_the_base_its_callers_catch(module: str, name: str, builtin: type, reason: Reason | None):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, FirebreakError) and issubclass(cls, builtin)
    if reason is not None:
        assert issubclass(cls, ActionError) and cls.reason is reason


# -- deliveries fail with their reason ----------------------------------------------------------------------


class Scripted(OutboundHttp):
    """Outbound HTTP answering from a script: a status, (status, Retry-After) or an exception to raise."""

    def __init__(self, script: list[Any]) -> None:
        super().__init__(AllowList.parse(["hooks.example.com"]))
        self.script = script
        self.calls = 0

    async def request(self, method: str, url: str, **kw: Any) -> HttpResult:
        self.calls += 1
        item = self.script.pop(0) if self.script else 200
        if isinstance(item, BaseException):
            raise item
        status, retry_after = item if isinstance(item, tuple) else (item, None)
        return HttpResult(status, url, "{}", False, "application/json", retry_after)


CHANNELS = {
    "hook": {"type": "webhook", "url": "https://hooks.example.com/h"},
    "signed": {"type": "webhook", "url": "https://hooks.example.com/h", "hmac_secret": "NOT_SET"},
    "bad-template": {"type": "webhook", "url": "https://hooks.example.com/h", "templates": {"title": "{{ nope.x }}"}},
    "mail": {"type": "email", "from": "fb@example.com"},
}


# (channel, answers, attempts made, status, reason); 3 attempts at most
DELIVERIES = [
    ("hook", [500, 503, 200], 3, DeliveryStatus.delivered, None),
    ("hook", [(429, "7"), 200], 2, DeliveryStatus.delivered, None),
    ("hook", [TimeoutError(), aiohttp.ClientConnectionError("reset"), 200], 3, DeliveryStatus.delivered, None),
    ("hook", [500, 500, 500], 3, DeliveryStatus.dead_lettered, Reason.unavailable),
    ("hook", [TimeoutError()] * 3, 3, DeliveryStatus.dead_lettered, Reason.timeout),
    ("hook", [OSError("unreachable")] * 3, 3, DeliveryStatus.dead_lettered, Reason.connection),
    ("hook", [404], 1, DeliveryStatus.dead_lettered, Reason.rejected),
    ("hook", [Refused("host x is not on the allow-list")], 1, DeliveryStatus.dead_lettered, Reason.refused_by_policy),
    ("signed", [], 1, DeliveryStatus.dead_lettered, Reason.secret_missing),
    ("bad-template", [], 1, DeliveryStatus.dead_lettered, Reason.render),
    ("mail", [], 1, DeliveryStatus.dead_lettered, Reason.config),
    ("nosuch", [], 0, DeliveryStatus.dead_lettered, Reason.config),
]


@pytest.mark.parametrize(("channel", "answers", "attempts", "status", "reason"), DELIVERIES)
def test_a_delivery_retries_while_its_reason_is_retryable_and_records_it(
    channel: str, answers: list[Any], attempts: int, status: DeliveryStatus, reason: Reason | None
):
    http = Scripted(list(answers))
    config = NotificationsFile.model_validate({"channels": CHANNELS})
    dead: list[Delivery] = []

    async def publish(d: Delivery) -> None:
        pass

    async def dead_letter(d: Delivery) -> None:
        dead.append(d)

    async def sleep(seconds: float) -> None:
        pass

    deliverer = Deliverer(
        Channels(dict(config.channels), http, Secrets(None, {}), None),
        RedisDown(),
        "t:",
        publish,
        dead_letter,
        attempts=3,
        sleep=sleep,
    )
    record = asyncio.run(
        deliverer.deliver(
            key="k",
            kind=DeliveryKind.page,
            incident_id="inc-1",
            channel=channel,
            message=Message(kind="page", dedup_key="k", incident=INCIDENT, level=1),
            level=1,
        )
    )
    assert record is not None and (record.status, record.attempts, record.reason) == (status, attempts, reason)
    assert [d.reason for d in dead] == ([reason] if reason else [])
    assert ("reason" in record.model_dump_json()) is (reason is not None)  # a delivered record reads as before


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (smtplib.SMTPResponseException(450, b"mailbox busy"), Reason.unavailable),
        (smtplib.SMTPResponseException(550, b"no such user"), Reason.rejected),
        (smtplib.SMTPServerDisconnected("gone"), Reason.connection),
        (ConnectionRefusedError("refused"), Reason.connection),
    ],
)
def test_smtp_replies_map_to_reasons(failure: BaseException, reason: Reason, monkeypatch: pytest.MonkeyPatch):
    class FailingSMTP:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise failure

    monkeypatch.setattr(smtplib, "SMTP", FailingSMTP)
    config = NotificationsFile.model_validate(
        {"channels": {"mail": {"type": "email", "from": "fb@example.com", "to": ["a@b.c"]}}}
    )
    channels = Channels(
        dict(config.channels), Scripted([]), Secrets(None, {}), SmtpSettings("mx", 25, False, None, None)
    )
    with pytest.raises(ActionError) as info:
        asyncio.run(channels.send("mail", Message(kind="page", dedup_key="k", incident=INCIDENT, level=1)))
    assert info.value.reason is reason


def test_a_dead_lettered_delivery_is_counted_and_sent_with_its_reason():
    from firebreak.worker import Worker

    sent: list[dict[str, Any]] = []

    async def send(**record: Any) -> None:
        sent.append(record)

    delivery = Delivery(
        delivery_id="d1",
        kind=DeliveryKind.page,
        incident_id="inc-1",
        channel="hook",
        channel_type="webhook",
        status=DeliveryStatus.dead_lettered,
        attempts=6,
        error="HTTP 503",
        reason=Reason.unavailable,
        at=NOW,
    )
    before = DEAD_LETTERS.labels("notify", "unavailable")._value.get()
    asyncio.run(Worker.dead_letter_delivery(SimpleNamespace(dead_letter=SimpleNamespace(send=send)), delivery))  # type: ignore[arg-type]
    assert DEAD_LETTERS.labels("notify", "unavailable")._value.get() == before + 1
    assert sent[0]["headers"]["reason"] == b"unavailable"


# -- steps fail with their reason ---------------------------------------------------------------------------

# (the step, the answers of its HTTP target, attempts made, reason, refused)
STEP_FAILURES = [
    (
        {"http": {"url": "http://127.0.0.1:8089/x"}, "retries": {"attempts": 2}},
        [503, 429, 502],
        3,
        Reason.unavailable,
        False,
    ),
    ({"http": {"url": "http://127.0.0.1:8089/x"}, "retries": {"attempts": 2}}, [404], 1, Reason.rejected, False),
    (
        {"http": {"url": "http://127.0.0.1:8089/x", "expect_status": [201]}, "retries": {"attempts": 2}},
        [200],
        1,
        Reason.rejected,
        False,
    ),
    (
        {"http": {"url": "http://127.0.0.1:8089/x"}, "retries": {"attempts": 2}},
        [Refused("no")],
        1,
        Reason.refused_by_policy,
        True,
    ),
    (
        {"http": {"url": "http://127.0.0.1:8089/x"}, "retries": {"attempts": 1}},
        [OSError("down")] * 2,
        2,
        Reason.connection,
        False,
    ),
    (
        {"http": {"url": "http://127.0.0.1:8089/x"}, "retries": {"attempts": 1}},
        [TimeoutError()] * 2,
        2,
        Reason.timeout,
        False,
    ),
    (
        {"http": {"url": "http://127.0.0.1:8089/{{ labels.nope }}"}, "retries": {"attempts": 2}},
        [],
        1,
        Reason.render,
        False,
    ),
    (
        {"http": {"url": "http://127.0.0.1:8089/x", "headers": {"A": {"secret": "UNSET"}}}, "retries": {"attempts": 2}},
        [],
        1,
        Reason.secret_missing,
        False,
    ),
    ({"command": {"argv": ["false"]}, "retries": {"attempts": 1}}, [], 2, Reason.command_failed, False),
    ({"command": {"argv": ["rm", "x"]}, "retries": {"attempts": 1}}, [], 1, Reason.refused_by_policy, True),
    ({"notify": {"channel": "nosuch", "message": "m"}, "retries": {"attempts": 1}}, [], 1, Reason.config, False),
    ({"resolve_incident": {}, "retries": {"attempts": 1}}, [], 1, Reason.config, False),
]


@pytest.mark.parametrize(("spec", "answers", "attempts", "reason", "refused"), STEP_FAILURES)
def test_a_step_retries_while_its_reason_is_retryable_and_reports_it(
    spec: dict[str, Any], answers: list[Any], attempts: int, reason: Reason, refused: bool
):
    svc = services(["127.0.0.1:8089"], commands=["false"])
    svc.http = Scripted(list(answers))
    outcome = asyncio.run(
        Runner(svc).run(
            Step.model_validate({"id": "s", **spec}),
            {"labels": {}, "incident": INCIDENT},
            run_id="r",
            incident_id="inc-1",
            actor="a",
            started_at=NOW,
            now=NOW,
        )
    )
    assert (outcome.status, outcome.attempts, outcome.reason, outcome.refused) == (
        StepStatus.failed,
        attempts,
        reason,
        refused,
    )
