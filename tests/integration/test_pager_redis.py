"""The pager's escalation state in the real Redis: a re-route replaces the escalation, and the state stays
readable after the Lua scripts re-encode it (cjson writes an empty list as {})."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from actions.pager import Pager
from adapters.links import Links
from correlation.escalation import EscalationStatus
from correlation.projection import project
from correlation.topology import Topology
from schemas import Alert, AlertStatus, IncidentEvent, IncidentEventKind
from schemas.notification import NotificationsFile
from tests.conftest import Stack

pytestmark = pytest.mark.integration

CONFIG = NotificationsFile.model_validate(
    {
        "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
        "escalation_policies": {
            "low": {"levels": [{"targets": [{"channel": "hook"}]}]},
            "high": {"levels": [{"targets": [{"channel": "hook"}]}]},
        },
        "routes": [{"severity": ["critical"], "policy": "high"}, {"policy": "low"}],
    }
)


def event(incident: str, seq: int, kind: IncidentEventKind, severity: str, alert: Alert | None = None) -> IncidentEvent:
    return IncidentEvent(
        event_id=f"{incident}:{seq}",
        kind=kind,
        incident_id=incident,
        correlation_key="k",
        group_labels={},
        seq=seq,
        at=datetime.now(UTC),
        severity=severity,
        alert=alert,
        actor="ana" if kind is IncidentEventKind.acknowledged else "firebreak",
    )


def alert(severity: str) -> Alert:
    now = datetime.now(UTC)
    return Alert(
        fingerprint=f"fp-{severity}",
        status=AlertStatus.firing,
        labels={"alertname": "A", "severity": severity},
        starts_at=now,
        source="test",
        received_at=now,
    )


def test_a_rerouted_escalation_is_readable_after_an_acknowledgement_and_later_events(stack: Stack) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        pager = Pager(
            CONFIG,
            client,
            f"test-{uuid.uuid4().hex[:8]}:",
            None,
            None,  # type: ignore[arg-type]
            Links("", [], 60),
            topology=Topology(),
            service_label="service",
        )
        iid, incident = "inc-reroute", None
        for seq, (kind, severity, joining) in enumerate(
            (
                (IncidentEventKind.opened, "warning", alert("warning")),
                (IncidentEventKind.alert_added, "warning", alert("warning")),
                (IncidentEventKind.alert_added, "critical", alert("critical")),
                (IncidentEventKind.severity_changed, "critical", alert("critical")),
                (IncidentEventKind.acknowledged, "critical", None),
                (IncidentEventKind.alert_added, "critical", alert("critical")),
            ),
            start=1,
        ):
            current = event(iid, seq, kind, severity, joining)
            incident = project(incident, current)
            assert incident is not None
            await pager.on_incident_event(current, incident)
            state = await pager.state(iid)  # readable after every script that wrote it
            assert state is not None
            if kind is IncidentEventKind.severity_changed:
                assert (state.policy, state.earlier, state.route) == ("high", ["low"], 0)
        assert state.status is EscalationStatus.stopped and state.policy == "high"
        await client.aclose()

    asyncio.run(scenario())


def test_an_escalation_never_rerouted_stays_readable_after_its_stop(stack: Stack) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        pager = Pager(
            CONFIG,
            client,
            f"test-{uuid.uuid4().hex[:8]}:",
            None,
            None,  # type: ignore[arg-type]
            Links("", [], 60),
            topology=Topology(),
            service_label="service",
        )
        opened = event("inc-plain", 1, IncidentEventKind.opened, "critical", alert("critical"))
        incident = project(None, opened)
        assert incident is not None
        await pager.on_incident_event(opened, incident)
        acked = event("inc-plain", 2, IncidentEventKind.acknowledged, "critical")
        incident = project(incident, acked)
        assert incident is not None
        await pager.on_incident_event(acked, incident)
        state = await pager.state("inc-plain")
        assert state is not None and state.status is EscalationStatus.stopped and state.earlier == []
        await client.aclose()

    asyncio.run(scenario())


def test_a_claim_sent_again_is_still_the_claimers_and_no_one_elses(stack: Stack) -> None:
    """The client sends a command again when its connection died (adapters/redis_client.py), and the first
    attempt may have run: the due item's score is then the claimer's own lease. The repeat must still be the
    claimer's, or the page waits out the lease (30 s) after a blip; another claimer must still be refused."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        prefix = f"test-{uuid.uuid4().hex[:8]}:"
        pager = Pager(
            CONFIG,
            client,
            prefix,
            None,
            None,  # type: ignore[arg-type]
            Links("", [], 60),
            topology=Topology(),
            service_label="service",
        )
        due, marker, now = f"{prefix}esc:due", f"{prefix}esc:due:claim:inc-1", datetime.now(UTC).timestamp()
        await client.zadd(due, {"inc-1": now - 1})
        claim = ["inc-1", now, now + 30, "pager-a"]
        assert await pager._claim(keys=[due, marker], args=claim) == 1
        assert await pager._claim(keys=[due, marker], args=claim) == 1  # the same claim again
        # another worker's claim, even one that computed the very same lease end
        assert await pager._claim(keys=[due, marker], args=["inc-1", now + 0.5, now + 30.5, "pager-b"]) == 0
        assert await pager._claim(keys=[due, marker], args=["inc-1", now, now + 30, "pager-b"]) == 0
        await client.delete(due, marker)
        await client.aclose()

    asyncio.run(scenario())
