"""POST /api/v1/incidents/{id}/merge and /split at the edge: what is accepted goes to Kafka as one command with
the snapshot of the source's alerts, keyed by its correlation key, and is audited; every refusal is a 4xx naming
the field and the fix, and sends nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from adapters.readmodel import IncidentStore
from adapters.silence_store import SilenceStore
from firebreak.settings import Settings
from ingest.server import AUDIT, create_app
from schemas import AlertStatus, CommandAction, Incident, IncidentAlert, IncidentCommand, IncidentStatus

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OPERATOR = {"Authorization": "Bearer operator-token"}


def incident(
    incident_id: str,
    key: str = 'p:{alertname="X"}',
    status: IncidentStatus = IncidentStatus.triggered,
    firing: str = "ab",
    resolved: str = "",
    **extra: Any,
) -> Incident:
    alerts = {
        f"fp-{n}": IncidentAlert(
            fingerprint=f"fp-{n}",
            status=AlertStatus.firing if n in firing else AlertStatus.resolved,
            labels={"alertname": "X", "instance": n},
            annotations={"summary": f"{n} is slow"},
            starts_at=NOW,
        )
        for n in firing + resolved
    }
    return Incident(
        id=incident_id,
        correlation_key=key,
        policy="p",
        group_labels={"alertname": "X"},
        status=status,
        title="X",
        opened_at=NOW,
        updated_at=NOW,
        seq=3,
        alerts=alerts,
        **extra,
    )


class Store(IncidentStore):
    def __init__(self, incidents: list[Incident]) -> None:
        super().__init__(aioredis.Redis.from_url("redis://127.0.0.1:1/0"), "t:")  # never reached
        self.incidents = {i.id: i for i in incidents}

    async def get(self, incident_id: str) -> Incident | None:
        return self.incidents.get(incident_id)


class Kafka:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, items: list[tuple[bytes, bytes]]) -> None:
        self.sent += [(topic, key, value) for key, value in items]


class Audit:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    async def record(self, **entry: Any) -> dict[str, Any]:
        self.entries.append(entry)
        return entry

    async def record_unauthenticated(self, **entry: Any) -> None:
        self.entries.append(entry)


INCIDENTS = [
    incident("inc-a", firing="ab", resolved="c"),
    incident("inc-b", firing="d"),
    incident("inc-other-key", key='p:{alertname="Y"}', firing="e"),
    incident("inc-done", status=IncidentStatus.resolved, firing=""),
    incident("inc-gone", status=IncidentStatus.resolved, firing="", merged_into="inc-b"),
]


def serve(check: Callable[[TestClient, Kafka, Audit], Awaitable[None]], incidents: list[Incident] = INCIDENTS) -> None:
    kafka, audit = Kafka(), Audit()
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
    app = create_app(
        Settings(ingest_tokens="operator:ana:operator-token,ingest:am:ingest-token"),  # type: ignore[arg-type]
        kafka,
        Store(incidents),
        SilenceStore(client, "t:"),
    )  # type: ignore[arg-type]
    app[AUDIT] = audit  # type: ignore[misc]

    async def main() -> None:
        async with TestClient(TestServer(app)) as http:
            await check(http, kafka, audit)

    asyncio.run(main())


async def post(
    http: TestClient, path: str, body: object, headers: dict[str, str] = OPERATOR
) -> tuple[int, dict[str, Any]]:
    response = await http.post(path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"})
    return response.status, await response.json()


def test_a_merge_goes_to_kafka_with_its_target_and_the_sources_alerts_and_is_audited():
    async def check(http: TestClient, kafka: Kafka, audit: Audit) -> None:
        status, body = await post(
            http, "/api/v1/incidents/inc-a/merge", {"into": "inc-b", "actor": "alice", "comment": "one outage"}
        )
        assert (status, body) == (202, {"accepted": True, "incident_id": "inc-a", "action": "merge", "into": "inc-b"})
        [(topic, key, value)] = kafka.sent
        command = IncidentCommand.model_validate_json(value)
        assert (topic, key) == ("alert-events", INCIDENTS[0].correlation_key.encode())
        assert (command.action, command.incident_id, command.into, command.actor, command.comment) == (
            CommandAction.merge,
            "inc-a",
            "inc-b",
            "alice",
            "one outage",
        )
        assert {a.fingerprint: a.labels["instance"] for a in command.snapshot} == {
            "fp-a": "a",
            "fp-b": "b",
            "fp-c": "c",
        }
        assert command.snapshot[0].annotations == {"summary": "a is slow"}
        [entry] = audit.entries
        assert (entry["principal"], entry["actor"], entry["action"], entry["status"], entry["detail"]) == (
            "ana",
            "alice",
            "POST /api/v1/incidents/{incident_id}/merge",
            202,
            "into inc-b",
        )

    serve(check)


def test_a_split_goes_to_kafka_with_the_chosen_alerts_and_is_audited():
    async def check(http: TestClient, kafka: Kafka, audit: Audit) -> None:
        status, body = await post(
            http, "/api/v1/incidents/inc-a/split", {"alerts": ["fp-b", "fp-c", "fp-b"], "actor": "bob"}
        )
        assert (status, body["action"], body["alerts"]) == (202, "split", ["fp-b", "fp-c"])
        command = IncidentCommand.model_validate_json(kafka.sent[0][2])
        assert (command.action, command.alerts, command.into) == (CommandAction.split, ["fp-b", "fp-c"], None)
        assert {a.fingerprint for a in command.snapshot} == {"fp-a", "fp-b", "fp-c"}
        assert audit.entries[0]["detail"] == "2 alerts: fp-b, fp-c" and audit.entries[0]["status"] == 202

    serve(check)


def test_acknowledge_and_resolve_commands_keep_their_json_without_the_new_fields():
    command = IncidentCommand(
        action=CommandAction.acknowledge, incident_id="inc-a", correlation_key="k", actor="a", at=NOW
    )
    assert set(json.loads(command.model_dump_json())) == {
        "type",
        "action",
        "incident_id",
        "correlation_key",
        "actor",
        "comment",
        "at",
    }


@pytest.mark.parametrize(
    "path, body, status, reason, field, says",
    [
        ("/api/v1/incidents/inc-nope/merge", {"into": "inc-b", "actor": "a"}, 404, "not_found", None, "no incident"),
        (
            "/api/v1/incidents/inc-a/merge",
            {"into": "inc-nope", "actor": "a"},
            404,
            "not_found",
            "into",
            "no incident inc-nope",
        ),
        (
            "/api/v1/incidents/inc-a/merge",
            {"into": "inc-a", "actor": "a"},
            422,
            "invalid_command",
            "into",
            "into itself",
        ),
        (
            "/api/v1/incidents/inc-done/merge",
            {"into": "inc-b", "actor": "a"},
            409,
            "already_resolved",
            "incident_id",
            "is resolved",
        ),
        (
            "/api/v1/incidents/inc-gone/merge",
            {"into": "inc-a", "actor": "a"},
            409,
            "already_resolved",
            "incident_id",
            "was merged into inc-b",
        ),
        (
            "/api/v1/incidents/inc-a/merge",
            {"into": "inc-done", "actor": "a"},
            409,
            "already_resolved",
            "into",
            "inc-done is resolved",
        ),
        (
            "/api/v1/incidents/inc-a/merge",
            {"into": "inc-other-key", "actor": "a"},
            409,
            "different_correlation_keys",
            "into",
            "only incidents of one correlation key (one policy and group) can be merged",
        ),
        ("/api/v1/incidents/inc-a/merge", {"actor": "a"}, 422, "invalid_command", "into", "into"),
        (
            "/api/v1/incidents/inc-a/merge",
            {"into": "inc-b", "actor": "a", "alerts": []},
            422,
            "invalid_command",
            "alerts",
            "alerts",
        ),
        (
            "/api/v1/incidents/inc-a/split",
            {"alerts": [], "actor": "a"},
            422,
            "invalid_command",
            "alerts",
            "name at least one alert to split off",
        ),
        (
            "/api/v1/incidents/inc-a/split",
            {"alerts": ["fp-a", "fp-x"], "actor": "a"},
            422,
            "invalid_command",
            "alerts[1]",
            "not in inc-a",
        ),
        (
            "/api/v1/incidents/inc-a/split",
            {"alerts": ["fp-a", "fp-b", "fp-c"], "actor": "a"},
            422,
            "invalid_command",
            "alerts",
            "nothing would remain",
        ),
        (
            "/api/v1/incidents/inc-a/split",
            {"alerts": ["fp-c"], "actor": "a"},
            422,
            "invalid_command",
            "alerts",
            "none of the alerts",
        ),
        (
            "/api/v1/incidents/inc-a/split",
            {"alerts": ["f"] * 1001, "actor": "a"},
            422,
            "invalid_command",
            "alerts",
            "1000",
        ),
        (
            "/api/v1/incidents/inc-a/split",
            {"alerts": ["f" * 129], "actor": "a"},
            422,
            "invalid_command",
            "alerts[0]",
            "128",
        ),
        (
            "/api/v1/incidents/inc-done/split",
            {"alerts": ["fp-a"], "actor": "a"},
            409,
            "already_resolved",
            "incident_id",
            "resolved",
        ),
        (
            "/api/v1/incidents/inc-gone/split",
            {"alerts": ["fp-a"], "actor": "a"},
            409,
            "already_resolved",
            "incident_id",
            "was merged into inc-b",
        ),
    ],
)
def test_refusals_name_the_field_and_the_fix_and_send_nothing(path, body, status, reason, field, says):
    async def check(http: TestClient, kafka: Kafka, audit: Audit) -> None:
        got, answer = await post(http, path, body)
        assert (got, answer["error"]) == (status, reason), answer
        text = answer["message"] + " " + " ".join(p["problem"] for p in answer["problems"])
        assert says in text, answer
        if field is not None:
            assert field in [p["field"] for p in answer["problems"]], answer
        assert kafka.sent == []
        assert audit.entries[0]["status"] == status  # refusals are audited too

    serve(check)


def test_the_different_keys_refusal_says_why_only_one_keys_incidents_merge():
    async def check(http: TestClient, kafka: Kafka, audit: Audit) -> None:
        _, answer = await post(http, "/api/v1/incidents/inc-a/merge", {"into": "inc-other-key", "actor": "a"})
        assert "The grouping stage owns each key's incidents" in answer["message"]
        assert 'p:{alertname="Y"}' in answer["message"] and "policy p" in answer["message"]

    serve(check)


def test_an_incident_with_more_alerts_than_a_command_carries_is_refused_with_the_way_out():
    big = incident("inc-big", firing="")
    alerts = {
        f"fp-{n}": IncidentAlert(fingerprint=f"fp-{n}", status=AlertStatus.firing, labels={"n": str(n)}, starts_at=NOW)
        for n in range(1001)
    }
    big = big.model_copy(update={"alerts": alerts})
    heavy = incident("inc-heavy", firing="")
    note = {"summary": "x" * 3000}
    heavy = heavy.model_copy(
        update={
            "alerts": {
                f"fp-{n}": IncidentAlert(
                    fingerprint=f"fp-{n}",
                    status=AlertStatus.firing,
                    labels={"n": str(n)},
                    annotations=note,
                    starts_at=NOW,
                )
                for n in range(400)
            }
        }
    )

    async def check(http: TestClient, kafka: Kafka, audit: Audit) -> None:
        status, answer = await post(http, "/api/v1/incidents/inc-big/merge", {"into": "inc-b", "actor": "a"})
        assert (status, answer["error"]) == (422, "too_many_alerts") and "smaller incident into the larger" in str(
            answer
        )
        status, answer = await post(http, "/api/v1/incidents/inc-heavy/merge", {"into": "inc-b", "actor": "a"})
        assert (status, answer["error"]) == (413, "command_too_large") and "smaller incident into the larger" in str(
            answer
        )
        assert kafka.sent == []

    serve(check, [*INCIDENTS, big, heavy])


def test_an_ingest_token_may_not_merge_or_split():
    async def check(http: TestClient, kafka: Kafka, audit: Audit) -> None:
        for route, body in [("merge", {"into": "inc-b", "actor": "a"}), ("split", {"alerts": ["fp-a"], "actor": "a"})]:
            status, answer = await post(
                http, f"/api/v1/incidents/inc-a/{route}", body, {"Authorization": "Bearer ingest-token"}
            )
            assert status == 403 and "needs operator" in answer["message"]
        assert kafka.sent == []

    serve(check)
