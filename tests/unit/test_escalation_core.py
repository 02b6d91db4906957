"""The escalation core (correlation/escalation.py `apply` and `tick`), table-driven: each row is an escalation
before, an incident event or a due level, and what the core must return. The live pager and the simulator's
pager only act on these outputs, so these rows are what both do (ESC-1..9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from correlation.escalation import (
    Escalation,
    EscalationStatus,
    Hastened,
    Held,
    Notice,
    Page,
    Paging,
    Started,
    Stopped,
    Unrouted,
    Update,
    apply,
    begin,
    start,
    tick,
)
from correlation.topology import Topology
from schemas import Incident, IncidentAlert, IncidentEvent, IncidentEventKind, IncidentStatus
from schemas.decision import Decision
from schemas.notification import NotificationsFile

UTC = UTC
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
K = IncidentEventKind

CONFIG = NotificationsFile.model_validate(
    {
        "channels": {
            "pager": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
            "chat": {"type": "webhook", "url": "http://127.0.0.1:9/chat"},
        },
        "users": {
            "alice": {"contacts": [{"channel": "pager", "address": "alice"}]},
            "carol": {"contacts": [{"channel": "pager", "address": "carol"}]},
        },
        "escalation_policies": {
            "payments": {"levels": [{"targets": [{"user": "alice"}], "delay": "5m"}, {"targets": [{"user": "carol"}]}]},
            "urgent": {"levels": [{"targets": [{"user": "carol"}, {"channel": "chat"}]}]},
        },
        "routes": [
            {"severity": ["critical"], "policy": "urgent"},
            {"severity": ["info"], "policy": None},
            {"matchers": ['service="checkout"'], "policy": "payments"},
        ],
    }
)
PAGING = Paging(CONFIG, Topology(), "service")


def incident(
    status: IncidentStatus = IncidentStatus.triggered,
    severity: str = "warning",
    service: str = "checkout",
    held_until: datetime | None = None,
) -> Incident:
    alert = IncidentAlert(fingerprint="f", status="firing", labels={"service": service}, starts_at=T0)
    return Incident(
        id="inc-1",
        correlation_key="k",
        group_labels={},
        status=status,
        title="t",
        severity=severity,
        opened_at=T0,
        updated_at=T0,
        seq=1,
        alerts={"f": alert},
        page_held_until=held_until,
    )


def event(
    kind: IncidentEventKind,
    at: datetime = T0,
    notify: bool = True,
    event_id: str = "e1",
    severity: str | None = None,
    held_until: datetime | None = None,
) -> IncidentEvent:
    return IncidentEvent(
        event_id=event_id,
        kind=kind,
        incident_id="inc-1",
        correlation_key="k",
        group_labels={},
        seq=1,
        at=at,
        notify=notify,
        severity=severity,
        page_held_until=held_until,
        actor="bob",
    )


ACTIVE = start("inc-1", "payments", "e0", T0, route=2)
PAGED = ACTIVE.model_copy(update={"level": 1, "due_at": T0 + timedelta(minutes=5)})
HELD = start("inc-1", "payments", "e1", T0).model_copy(
    update={"due_at": T0 + timedelta(minutes=2), "started_at": T0 + timedelta(minutes=2)}
)


def kinds(outputs: list[object]) -> list[str]:
    """Each output's class name; a decision as `Decision:<kind>`."""
    return [f"Decision:{o.kind.value}" if isinstance(o, Decision) else type(o).__name__ for o in outputs]


# current escalation, event, incident after it, now -> escalation policy after (None: none), outputs
APPLY_ROWS = [
    pytest.param(
        None,
        event(K.opened),
        incident(),
        T0,
        "payments",
        ["Started", "Decision:escalation_started"],
        id="ESC-1 opened: routed, level 1 due now",
    ),
    pytest.param(
        None, event(K.opened, notify=False), incident(), T0, None, [], id="ESC-1 opened while flapping: nothing"
    ),
    pytest.param(
        ACTIVE,
        event(K.opened, event_id="e0"),
        incident(),
        T0,
        "payments",
        [],
        id="ESC-1 a redelivered opening starts nothing again",
    ),
    pytest.param(
        None,
        event(K.flapping_ended),
        incident(),
        T0,
        "payments",
        ["Started", "Decision:escalation_started"],
        id="ESC-1 flapping ended, never paged: starts",
    ),
    pytest.param(
        PAGED,
        event(K.flapping_ended),
        incident(),
        T0,
        "payments",
        [],
        id="ESC-1 flapping ended after it paged: nothing",
    ),
    pytest.param(
        None,
        event(K.opened, held_until=T0 + timedelta(minutes=2)),
        incident(),
        T0,
        "payments",
        ["Started", "Decision:escalation_started", "Decision:page_held"],
        id="ESC-2 opened in a transient pause",
    ),
    pytest.param(
        None,
        event(K.opened, held_until=T0 + timedelta(minutes=2)),
        incident(),
        T0 + timedelta(minutes=3),
        "payments",
        ["Started", "Decision:escalation_started"],
        id="ESC-2 a pause over by now holds nothing",
    ),
    pytest.param(
        PAGED,
        event(K.severity_changed, severity="critical"),
        incident(severity="critical"),
        T0,
        "urgent",
        ["Started", "Decision:escalation_started", "Update"],
        id="ESC-3 severity rose: re-routed to another policy, and an update to those paged",
    ),
    pytest.param(
        HELD,
        event(K.page_hold_ended),
        incident(),
        T0 + timedelta(minutes=1),
        "payments",
        ["Hastened"],
        id="ESC-4 the pause cut short: level 1 due now",
    ),
    pytest.param(
        PAGED,
        event(K.page_hold_ended),
        incident(),
        T0 + timedelta(minutes=1),
        "payments",
        [],
        id="ESC-4 level 1 went out already: nothing",
    ),
    pytest.param(
        PAGED,
        event(K.acknowledged),
        incident(IncidentStatus.acknowledged),
        T0,
        "payments",
        ["Stopped", "Notice"],
        id="ESC-5 acknowledged: stops, notice to those paged",
    ),
    pytest.param(
        HELD,
        event(K.resolved, at=T0 + timedelta(minutes=1)),
        incident(IncidentStatus.resolved, held_until=T0 + timedelta(minutes=2)),
        T0 + timedelta(minutes=1),
        "payments",
        ["Stopped", "Notice", "HeldOff", "Decision:not_paged"],
        id="ESC-2 resolved within its pause: nobody paged",
    ),
    pytest.param(
        PAGED,
        event(K.alert_added),
        incident(),
        T0,
        "payments",
        ["Update"],
        id="ESC-6 an alert joined a paged incident: one coalesced update",
    ),
    pytest.param(
        None,
        event(K.opened),
        incident(service="search"),
        T0,
        None,
        ["Unrouted", "Decision:not_paged"],
        id="ESC-9 no route and no default: nobody is paged",
    ),
    pytest.param(
        None,
        event(K.opened),
        incident(severity="info"),
        T0,
        None,
        ["Unrouted", "Decision:not_paged"],
        id="ESC-9 a route that pages nobody",
    ),
]


@pytest.mark.parametrize(("current", "ev", "after", "now", "policy", "expected"), APPLY_ROWS)
def test_apply(
    current: Escalation | None,
    ev: IncidentEvent,
    after: Incident,
    now: datetime,
    policy: str | None,
    expected: list[str],
) -> None:
    state, outputs = apply(current, ev, after, now, PAGING)
    assert kinds(outputs) == expected
    assert (state.policy if state is not None else None) == policy


def test_the_state_apply_returns_is_the_one_its_outputs_store() -> None:
    state, outputs = apply(None, event(K.opened, held_until=T0 + timedelta(minutes=2)), incident(), T0, PAGING)
    started = outputs[0]
    assert isinstance(started, Started) and started.state == state and not started.only_if_absent
    assert state is not None and state.due_at == T0 + timedelta(minutes=2) and state.generation == "e1"

    state, outputs = apply(HELD, event(K.page_hold_ended), incident(), T0 + timedelta(minutes=1), PAGING)
    assert isinstance(outputs[0], Hastened) and outputs[0].state == state and state.due_at == T0 + timedelta(minutes=1)

    state, outputs = apply(PAGED, event(K.resolved), incident(IncidentStatus.resolved), T0, PAGING)
    assert state is not None and state.status is EscalationStatus.stopped
    assert outputs[0] == Stopped("inc-1", "resolved:bob")
    assert outputs[1] == Notice("inc-1", K.resolved, "e1", "bob", T0)

    state, outputs = apply(
        PAGED, event(K.severity_changed, severity="critical"), incident(severity="critical"), T0, PAGING
    )
    assert isinstance(outputs[0], Started) and outputs[0].outcome == "rerouted"
    assert state is not None and state.earlier == ["payments"]  # never routed back to a policy that paged it
    assert apply(PAGED, event(K.alert_added), incident(), T0, PAGING)[1] == [Update("inc-1")]


# escalation, incident, now, muted -> outputs, then (status, level, due_at) after
DUE_ROWS = [
    pytest.param(
        ACTIVE.model_copy(update={"policy": "removed"}),
        incident(),
        T0,
        None,
        ["Stopped", "Decision:not_paged"],
        (EscalationStatus.stopped, 0, T0),
        id="ESC-9 its escalation policy left the notifications file: stops, says so",
    ),
    pytest.param(
        ACTIVE,
        incident(),
        T0,
        None,
        ["Page"],
        (EscalationStatus.active, 1, T0 + timedelta(minutes=5)),
        id="ESC-8 level 1 pages, level 2 due its delay after level 1 was due",
    ),
    pytest.param(
        PAGED,
        incident(),
        T0 + timedelta(minutes=5),
        None,
        ["Page"],
        (EscalationStatus.exhausted, 2, None),
        id="ESC-8 the last level pages, no repeat: exhausted",
    ),
    pytest.param(
        ACTIVE,
        incident(IncidentStatus.acknowledged),
        T0,
        None,
        ["Stopped"],
        (EscalationStatus.stopped, 0, T0),
        id="ESC-5 due on an incident no longer triggered: stops",
    ),
    pytest.param(
        ACTIVE,
        incident(),
        T0,
        "silence:s1",
        ["Held", "Decision:page_held"],
        (EscalationStatus.active, 0, T0 + timedelta(seconds=10)),
        id="ESC-7 muted: held, looked at again",
    ),
    pytest.param(
        ACTIVE.model_copy(update={"held_at": T0}),
        incident(),
        T0 + timedelta(seconds=10),
        "silence:s1",
        ["Held"],
        (EscalationStatus.active, 0, T0 + timedelta(seconds=20)),
        id="ESC-7 still muted: logged once",
    ),
    pytest.param(
        ACTIVE.model_copy(update={"held_at": T0}),
        incident(),
        T0 + timedelta(minutes=30),
        None,
        ["Page"],
        (EscalationStatus.active, 1, T0 + timedelta(minutes=35)),
        id="ESC-8 a page a mute held gives the next level its full delay",
    ),
]


@pytest.mark.parametrize(("state", "current", "now", "muted", "expected", "after"), DUE_ROWS)
def test_tick(
    state: Escalation,
    current: Incident,
    now: datetime,
    muted: str | None,
    expected: list[str],
    after: tuple[EscalationStatus, int, datetime | None],
) -> None:
    following, outputs = tick(state, current, now, muted, PAGING)
    assert kinds(outputs) == expected
    status, level, due_at = after
    assert (following.status, following.level) == (status, level)
    if due_at is not None:
        assert following.due_at == due_at


def test_a_page_names_its_level_recipients_and_what_it_answers() -> None:
    following, outputs = tick(PAGED, incident(), T0 + timedelta(minutes=5), None, PAGING)
    page = outputs[0]
    assert isinstance(page, Page) and page.level == 2 and page.following == following
    assert [(r.user, r.channel) for r in page.recipients] == [("carol", "pager")]
    assert page.caused_at == PAGED.due_at  # a later level answers its own due time; level 1 the start
    assert isinstance(tick(ACTIVE, incident(), T0, None, PAGING)[1][0], Page)
    assert tick(ACTIVE, incident(), T0 + timedelta(seconds=3), None, PAGING)[1][0].caused_at == T0  # type: ignore[union-attr]
    held = tick(ACTIVE, incident(), T0, "inhibit:r", PAGING)[1][0]
    assert isinstance(held, Held) and held.first and held.state.held_at == T0


def test_begin_starts_by_route_or_says_nobody_is_paged() -> None:
    state, outputs = begin(incident(), "warning", None, "inc-1:1", T0, PAGING, only_if_absent=True)
    assert state is not None and state.policy == "payments" and state.route == 2
    assert isinstance(outputs[0], Started) and outputs[0].only_if_absent
    state, outputs = begin(incident(service="search"), "warning", None, "g", T0, PAGING)
    assert state is None and isinstance(outputs[0], Unrouted)
