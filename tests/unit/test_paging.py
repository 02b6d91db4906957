"""On-call schedules (including a daylight-saving change), routing, the escalation state machine, message
rendering and escaping, and signed links. Pure: no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from actions.channels import Message, render_message, slack_escape
from adapters.links import Links
from correlation.escalation import EscalationStatus, Recipient, after_paging, recipients, route, start
from correlation.oncall import on_call
from correlation.topology import Service, Topology
from schemas import Incident, IncidentAlert, IncidentStatus
from schemas.notification import EmailChannel, NotificationsFile, Schedule, WebhookChannel

UTC = UTC
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def schedule(**rotation: object) -> Schedule:
    base = {
        "type": "weekly",
        "members": ["alice", "bob", "carol"],
        "start": "2026-03-02",
        "handoff": "09:00",
        "handoff_day": "monday",
    }
    return Schedule.model_validate({"time_zone": "Europe/Berlin", "rotation": {**base, **rotation}})


def test_weekly_handoff_follows_local_time_across_the_spring_dst_change():
    # Berlin moves from UTC+1 to UTC+2 on Sunday 2026-03-29. Turns: alice from Mon 2 Mar, bob 9, carol 16,
    # alice 23 Mar; bob from Mon 30 Mar 09:00 *CEST*, which is 07:00 UTC (a 7 x 24 h clock would say 08:00).
    s = schedule()
    assert on_call(s, datetime(2026, 3, 30, 6, 59, tzinfo=UTC)).user == "alice"
    shift = on_call(s, datetime(2026, 3, 30, 7, 0, tzinfo=UTC))
    assert shift.user == "bob"
    assert shift.start == datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN) and shift.start.astimezone(
        BERLIN
    ).utcoffset() == timedelta(hours=2)
    previous = on_call(s, datetime(2026, 3, 29, 12, 0, tzinfo=UTC))
    assert previous.user == "alice" and previous.end - previous.start == timedelta(days=7, hours=-1)  # the short week


def test_daily_handoff_across_the_autumn_dst_change():
    s = schedule(type="daily", members=["alice", "bob"], start="2026-10-20")
    # Berlin goes back to UTC+1 on Sunday 2026-10-25: the handoff moves from 07:00 UTC to 08:00 UTC.
    sat, sun = (
        on_call(s, datetime(2026, 10, 24, 7, 30, tzinfo=UTC)),
        on_call(s, datetime(2026, 10, 25, 7, 30, tzinfo=UTC)),
    )
    assert sat.start == datetime(2026, 10, 24, 7, 0, tzinfo=UTC)
    assert sun.user == sat.user  # 07:30 UTC on Sunday is 08:30 local: before that day's 09:00 handoff
    assert on_call(s, datetime(2026, 10, 25, 8, 0, tzinfo=UTC)).user != sat.user
    assert sun.end - sun.start == timedelta(hours=25)


def test_a_start_date_off_the_handoff_day_begins_at_the_next_one():
    s = schedule(start="2026-03-04")  # a Wednesday: alice's first turn starts Monday 9 March
    assert on_call(s, datetime(2026, 3, 9, 8, 1, tzinfo=UTC)).user == "alice"
    assert on_call(s, datetime(2026, 3, 9, 7, 59, tzinfo=UTC)).user == "carol"  # the turn before, counted backwards


def test_overrides_win_and_cut_shifts():
    base = schedule().model_dump(mode="json")
    base["overrides"] = [{"user": "dave", "start": "2026-03-10T12:00:00Z", "end": "2026-03-11T12:00:00Z"}]
    s = Schedule.model_validate(base)
    assert on_call(s, datetime(2026, 3, 10, 13, 0, tzinfo=UTC)).user == "dave"
    before = on_call(s, datetime(2026, 3, 10, 11, 0, tzinfo=UTC))
    assert before.user == "bob" and before.end == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    after = on_call(s, datetime(2026, 3, 11, 13, 0, tzinfo=UTC))
    assert after.user == "bob" and after.start == datetime(2026, 3, 11, 12, 0, tzinfo=UTC)


CONFIG = NotificationsFile.model_validate(
    {
        "channels": {
            "pager": {"type": "webhook", "url": "http://127.0.0.1:9/hook"},
            "chat": {"type": "webhook", "url": "http://127.0.0.1:9/chat"},
            "mail": {"type": "email", "from": "firebreak@example.com"},
        },
        "users": {
            "alice": {
                "contacts": [
                    {"channel": "pager", "address": "alice"},
                    {"channel": "mail", "address": "alice@example.com"},
                ]
            },
            "bob": {"contacts": [{"channel": "pager", "address": "bob"}]},
            "carol": {"contacts": [{"channel": "pager", "address": "carol"}]},
        },
        "schedules": {
            "primary": {
                "time_zone": "UTC",
                "rotation": {"type": "daily", "members": ["alice", "bob"], "start": "2026-03-01", "handoff": "00:00"},
            }
        },
        "escalation_policies": {
            "payments": {
                "levels": [
                    {"targets": [{"schedule": "primary"}, {"channel": "chat"}], "delay": "5m"},
                    {"targets": [{"user": "carol"}], "delay": "10m"},
                ],
                "repeat": 1,
            },
            "catch-all": {"levels": [{"targets": [{"channel": "chat"}]}]},
        },
        "routes": [{"severity": ["info"], "policy": None}, {"matchers": ['alertname="Watchdog"'], "policy": None}],
        "default_policy": "catch-all",
    }
)


def incident(labels: dict[str, str], severity: str = "critical") -> Incident:
    alert = IncidentAlert(fingerprint="f", status="firing", labels=labels, starts_at=NOW)
    return Incident(
        id="inc-1",
        correlation_key="k",
        group_labels={},
        status=IncidentStatus.triggered,
        title="t",
        severity=severity,
        opened_at=NOW,
        updated_at=NOW,
        seq=1,
        alerts={"f": alert},
    )


def test_routes_then_the_owner_team_then_the_default():
    topo = Topology(services=(Service(name="checkout", team="payments"),))
    assert route(incident({"service": "checkout"}), "critical", CONFIG, topo, "service") == "payments"
    assert route(incident({"service": "search"}), "critical", CONFIG, topo, "service") == "catch-all"
    assert route(incident({"service": "checkout"}, "info"), "info", CONFIG, topo, "service") is None
    assert (
        route(incident({"service": "checkout", "alertname": "Watchdog"}), "critical", CONFIG, topo, "service") is None
    )


def test_levels_move_on_delay_from_when_they_were_due_then_repeat_then_stop():
    state = start("inc-1", "payments", "ev-1", NOW)
    assert recipients(state, CONFIG, NOW) == [
        Recipient(channel="pager", address="alice", user="alice"),
        Recipient(channel="mail", address="alice@example.com", user="alice"),
        Recipient(channel="chat"),
    ]
    second = after_paging(state, CONFIG)
    assert (second.level, second.round, second.due_at) == (1, 0, NOW + timedelta(minutes=5))
    assert recipients(second, CONFIG, NOW) == [Recipient(channel="pager", address="carol", user="carol")]
    again = after_paging(second, CONFIG)
    assert (again.level, again.round, again.due_at) == (0, 1, NOW + timedelta(minutes=15))
    assert recipients(again, CONFIG, NOW + timedelta(days=1))[0].user == "bob"  # the schedule is read when paging
    done = after_paging(after_paging(again, CONFIG), CONFIG)
    assert done.status is EscalationStatus.exhausted


def test_the_file_refuses_dangling_names():
    with pytest.raises(ValidationError, match="schedule 'nobody' is not defined"):
        NotificationsFile.model_validate(
            {"channels": {}, "escalation_policies": {"p": {"levels": [{"targets": [{"schedule": "nobody"}]}]}}}
        )
    with pytest.raises(ValidationError, match="escalation policy 'ghost' is not defined"):
        NotificationsFile.model_validate({"default_policy": "ghost"})
    with pytest.raises(ValidationError, match="unknown time zone"):
        Schedule.model_validate(
            {"time_zone": "Mars/Olympus", "rotation": {"type": "daily", "members": ["a"], "start": "2026-01-01"}}
        )


def message(**incident_fields: object) -> Message:
    base = {
        "id": "inc-1",
        "title": "HighLatency on checkout",
        "status": "triggered",
        "severity": "critical",
        "services": ["checkout"],
        "probable_root": "db",
        "suspect_changes": ["deploy-42"],
        "firing_count": 3,
        "alert_count": 3,
        "labels": {},
    }
    return Message(
        kind="page",
        dedup_key="k",
        incident={**base, **incident_fields},
        level=1,
        recipient="alice",
        links={"ack": "https://fb.example/l/ack/inc-1?sig=x", "resolve": "https://fb.example/l/resolve/inc-1?sig=y"},
    )


def test_default_templates_carry_what_a_responder_needs():
    rendered = render_message(WebhookChannel(url="http://x/"), message())
    assert rendered.title == "[CRITICAL] HighLatency on checkout"
    for needed in (
        "probable root: db",
        "Suspect changes: deploy-42",
        "Acknowledge: https://fb.example/l/ack/inc-1",
        "level 1",
    ):
        assert needed in rendered.text


def test_notices_without_links_render():
    notice = Message(kind="acknowledge", dedup_key="k", incident=message().incident, actor="ana")
    rendered = render_message(WebhookChannel(url="http://x/"), notice)
    assert rendered.title == "Acknowledged by ana: HighLatency on checkout" and "Acknowledge:" not in rendered.text


def test_the_resolve_notice_of_a_merged_incident_names_the_incident_it_went_into():
    merged = Message(
        kind="resolve", dedup_key="k", incident={**message().incident, "merged_into": "inc-2"}, actor="ana"
    )
    assert render_message(WebhookChannel(url="http://x/"), merged).title == "Merged into inc-2: HighLatency on checkout"
    resolved = Message(kind="resolve", dedup_key="k", incident=message().incident, actor="ana")
    assert render_message(WebhookChannel(url="http://x/"), resolved).title == "Resolved: HighLatency on checkout"


def test_labels_are_escaped_for_html_and_slack_and_never_break_a_subject():
    evil = message(title="<script>alert(1)</script> <!channel> <https://evil|click>\r\nBcc: x@example.com")
    rendered = render_message(EmailChannel.model_validate({"type": "email", "from": "fb@example.com"}), evil)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "\n" not in rendered.title and "\r" not in rendered.title
    escaped = slack_escape(rendered.title)
    assert "<!channel>" not in escaped and "&lt;!channel&gt;" in escaped and "<https://evil|click>" not in escaped


def test_channel_templates_can_be_overridden_and_stay_sandboxed():
    custom = WebhookChannel(
        url="http://x/", templates={"title": "P{{ level }} {{ incident.id }}", "text": "{{ ''.__class__ }}"}
    )
    with pytest.raises(Exception, match="sandbox|unsafe"):
        render_message(custom, message())
    assert (
        render_message(
            WebhookChannel(url="http://x/", templates={"title": "P{{ level }} {{ incident.id }}"}), message()
        ).title
        == "P1 inc-1"
    )


def test_signed_links_verify_and_expire_and_survive_key_rotation():
    old, new = Links("https://fb.example", [b"old-key"], 60), Links("https://fb.example", [b"new-key", b"old-key"], 60)
    url = old.url("ack", "inc-1", "alice", now=1_000_000)
    query = dict(part.split("=") for part in url.split("?")[1].split("&"))
    assert url.startswith("https://fb.example/l/ack/inc-1?")
    assert new.problem("ack", "inc-1", "alice", query["exp"], query["sig"], now=1_000_010) is None
    assert "expired" in new.problem("ack", "inc-1", "alice", query["exp"], query["sig"], now=1_000_061)
    assert "signature" in new.problem("resolve", "inc-1", "alice", query["exp"], query["sig"], now=1_000_010)
    assert "signature" in new.problem("ack", "inc-1", "mallory", query["exp"], query["sig"], now=1_000_010)
    assert "signature" in Links("https://fb.example", [b"other"], 60).problem(
        "ack", "inc-1", "alice", query["exp"], query["sig"], now=1_000_010
    )


def test_what_each_incident_event_means_for_paging():
    from correlation.escalation import Reaction, reaction
    from schemas import IncidentEvent, IncidentEventKind

    def event(kind: IncidentEventKind, notify: bool = True) -> IncidentEvent:
        return IncidentEvent(
            event_id="e",
            kind=kind,
            incident_id="inc-1",
            correlation_key="k",
            group_labels={},
            seq=1,
            at=NOW,
            notify=notify,
        )

    open_incident = incident({"service": "checkout"})
    acked = open_incident.model_copy(update={"status": IncidentStatus.acknowledged})
    assert reaction(event(IncidentEventKind.opened), open_incident) is Reaction.start
    assert reaction(event(IncidentEventKind.opened, notify=False), open_incident) is Reaction.none  # flapping holds
    assert reaction(event(IncidentEventKind.reopened), open_incident) is Reaction.start
    assert reaction(event(IncidentEventKind.flapping_ended), open_incident) is Reaction.start_if_never_paged
    assert reaction(event(IncidentEventKind.flapping_ended), acked) is Reaction.none
    assert reaction(event(IncidentEventKind.acknowledged), acked) is Reaction.stop
    assert reaction(event(IncidentEventKind.resolved), acked) is Reaction.stop
    assert reaction(event(IncidentEventKind.alert_added), open_incident) is Reaction.update
    assert reaction(event(IncidentEventKind.alert_added, notify=False), open_incident) is Reaction.none
    assert reaction(event(IncidentEventKind.flapping_started), open_incident) is Reaction.none
    assert reaction(event(IncidentEventKind.page_hold_ended), open_incident) is Reaction.hasten
    assert reaction(event(IncidentEventKind.page_hold_ended), acked) is Reaction.none


def test_a_transient_pause_cut_short_brings_level_1_forward_but_never_pages_it_twice():
    from correlation.escalation import hastened

    held = start("inc-1", "payments", "ev-1", NOW).model_copy(
        update={"due_at": NOW + timedelta(minutes=5), "started_at": NOW + timedelta(minutes=5)}
    )
    sooner = hastened(held, NOW + timedelta(minutes=1))
    assert sooner is not None and sooner.due_at == sooner.started_at == NOW + timedelta(minutes=1)
    assert after_paging(sooner, CONFIG).due_at == NOW + timedelta(
        minutes=6
    )  # level 2 counts from the page that went out
    assert hastened(held, NOW + timedelta(minutes=5)) is None  # its hold already ran out: level 1 is due or paged
    assert (
        hastened(after_paging(held, CONFIG), NOW + timedelta(minutes=1)) is None
    )  # level 1 went out: leave level 2 alone
    stopped = held.model_copy(update={"status": EscalationStatus.stopped})
    assert hastened(stopped, NOW + timedelta(minutes=1)) is None


def test_a_level_held_by_a_mute_gives_the_next_level_its_full_delay_after_the_page():
    state = start("inc-1", "payments", "ev-1", NOW)
    held = state.model_copy(update={"held_at": NOW + timedelta(seconds=5)})
    following = after_paging(held, CONFIG, paged_at=NOW + timedelta(minutes=30))
    assert following.held_at is None and following.due_at == NOW + timedelta(minutes=35)
    # Not held: the schedule counts from when the level was due, whenever it went out (a worker restart).
    assert after_paging(state, CONFIG, paged_at=NOW + timedelta(minutes=30)).due_at == NOW + timedelta(minutes=5)
