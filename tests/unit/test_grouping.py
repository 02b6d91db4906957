"""The grouping stage's transitions, one test per rule of the table in correlation/grouping.py."""

from datetime import timedelta

from correlation.fingerprint import correlation_key, group_labels
from correlation.grouping import group
from correlation.policy import Policy, PolicySet
from correlation.rules import Rules
from schemas import AlertEvent, CommandAction, IncidentCommand, Tick
from tests.factories import alert, at


def rules(**overrides) -> Rules:
    return Rules(PolicySet(policies=(Policy(**{"name": "p", "group_by": ("alertname", "service"), **overrides}),)))


class Key:
    """Feeds one correlation key's inputs through `group`, numbering positions like a partition would."""

    def __init__(self, **policy):
        self.rules = rules(**policy)
        self.group_by = policy.get("group_by", ("alertname", "service"))
        self.entry = None
        self.position = 0
        self.events = []

    def _apply(self, item, now):
        self.entry, out = group(self.entry, item, self.position, at(now), self.rules)
        self.position += 1
        self.events.extend(out)
        return [e.kind.value for e in out]

    def fire(self, instance="a", now=0, starts=None, service="s", **labels):
        return self._apply(
            self._event(
                alert(
                    starts=now if starts is None else starts,
                    instance=instance,
                    alertname="X",
                    service=service,
                    **labels,
                ),
                now,
            ),
            now,
        )

    def resolve(self, instance="a", now=0):
        return self._apply(
            self._event(alert("resolved", starts=0, ends=now, instance=instance, alertname="X", service="s"), now), now
        )

    def tick(self, now):
        return self._apply(Tick(at=at(now)), now)

    def command(self, action, incident_id, now, actor="alice"):
        cmd = IncidentCommand(
            action=action, incident_id=incident_id, correlation_key=self.entry.correlation_key, actor=actor, at=at(now)
        )
        return self._apply(cmd, now)

    def _event(self, a, now):
        grouped = group_labels(a.labels, self.group_by)
        return AlertEvent(
            status=a.status,
            policy="p",
            correlation_key=f"p:{correlation_key(grouped)}",
            group_labels=grouped,
            alert=a,
            at=at(now),
            source_position=self.position,
        )

    def ids(self):
        return list(dict.fromkeys(e.incident_id for e in self.events))


def test_grp1_first_firing_opens_and_adds():
    key = Key()
    assert key.fire() == ["opened", "alert_added"]
    assert [e.seq for e in key.events] == [1, 2]


def test_grp5_second_alert_joins_the_open_incident():
    key = Key()
    key.fire("a")
    assert key.fire("b", now=1) == ["alert_added"]
    assert len(key.ids()) == 1


def test_grp7_the_same_alert_again_changes_nothing():
    key = Key()
    key.fire("a")
    assert key.fire("a", now=1) == []


def test_grp8_grp9_incident_resolves_when_its_last_alert_resolves():
    key = Key()
    key.fire("a")
    key.fire("b", now=1)
    assert key.resolve("a", now=5) == ["alert_resolved"]
    assert key.resolve("b", now=6) == ["alert_resolved", "resolved"]


def test_firing_after_resolve_opens_a_new_incident_without_a_reopen_window():
    key = Key()
    key.fire("a")
    key.resolve("a", now=5)
    assert key.fire("a", now=10) == ["opened", "alert_added"]
    assert len(key.ids()) == 2


def test_grp2_grp3_group_wait_collects_then_opens_with_every_alert():
    key = Key(group_wait=timedelta(seconds=30))
    assert key.fire("a", now=0) == []
    assert key.fire("b", now=10) == []
    assert key.entry.due_at == at(30)
    assert key.tick(29) == []
    assert key.tick(30) == ["opened", "alert_added", "alert_added"]


def test_grp4_group_wait_drops_an_incident_whose_alerts_all_resolved_in_time():
    key = Key(group_wait=timedelta(seconds=30))
    key.fire("a", now=0)
    key.resolve("a", now=10)
    assert key.tick(30) == [] and key.events == []


def test_group_window_closes_the_incident_to_new_alerts():
    key = Key(group_window=timedelta(minutes=5))
    key.fire("a", now=0)
    assert key.fire("b", now=299) == ["alert_added"]
    assert key.fire("c", now=301) == ["opened", "alert_added"]
    assert len(key.ids()) == 2


def test_an_alert_held_by_an_older_open_incident_returns_to_it_not_to_the_new_one():
    key = Key(group_window=timedelta(minutes=5))
    key.fire("a", now=0)
    key.fire("b", now=1)  # keeps the first incident open once a resolves
    key.fire("c", now=400)  # opens the second incident
    key.resolve("a", now=500)
    assert key.fire("a", now=600, starts=600) == ["alert_added"]
    assert key.events[-1].incident_id == key.ids()[0]


def test_max_alerts_overflows_into_a_new_incident():
    key = Key(max_alerts=2)
    key.fire("a")
    key.fire("b", now=1)
    assert key.fire("c", now=2) == ["opened", "alert_added"]


def test_severity_is_the_highest_and_raising_it_is_an_event():
    key = Key()
    key.fire("a", severity="warning")
    assert key.events[0].severity == "warning"
    assert key.fire("b", now=1, severity="critical") == ["alert_added", "severity_changed"]
    assert key.fire("c", now=2, severity="info") == ["alert_added"]
    assert key.events[-1].severity == "critical"


def test_resolve_timeout_waits_before_resolving_and_a_refire_cancels_it():
    key = Key(resolve_timeout=timedelta(minutes=5))
    key.fire("a")
    assert key.resolve("a", now=10) == ["alert_resolved"]
    assert key.tick(100) == []
    assert key.fire("a", now=200, starts=200) == ["alert_added"]
    key.resolve("a", now=210)
    assert key.tick(510) == ["resolved"]


def test_grp10_reopens_inside_the_reopen_window():
    key = Key(reopen_window=timedelta(minutes=10))
    key.fire("a")
    key.resolve("a", now=60)
    assert key.fire("a", now=300, starts=300) == ["reopened", "alert_added"]
    assert len(key.ids()) == 1


def test_grp11_after_the_reopen_window_a_firing_opens_a_new_incident():
    key = Key(reopen_window=timedelta(minutes=10))
    key.fire("a")
    key.resolve("a", now=60)
    assert key.tick(60 + 600) == []
    assert key.fire("a", now=700, starts=700) == ["opened", "alert_added"]


def test_grp12_acknowledge_records_the_actor_once():
    key = Key()
    key.fire("a")
    incident = key.ids()[0]
    assert key.command(CommandAction.acknowledge, incident, now=5) == ["acknowledged"]
    assert key.events[-1].actor == "alice"
    assert key.command(CommandAction.acknowledge, incident, now=6) == []


def test_grp25_resolve_by_hand_while_alerts_still_fire_releases_them():
    key = Key()
    key.fire("a")
    incident = key.ids()[0]
    assert key.command(CommandAction.resolve, incident, now=5, actor="bob") == ["resolved", "alert_resolved"]
    resolved, released_one = key.events[-2:]
    assert (resolved.rule, resolved.actor) == ("GRP-25", "bob")
    firing_fp = alert(instance="a", alertname="X", service="s").fingerprint
    assert (released_one.rule, released_one.related) == ("GRP-25", [firing_fp])
    assert key.entry.incidents[incident].alerts[firing_fp].value == "resolved"
    assert key.command(CommandAction.acknowledge, incident, now=6) == []


def test_commands_for_unknown_incidents_change_nothing():
    key = Key()
    key.fire("a")
    assert key.command(CommandAction.resolve, "inc-unknown", now=5) == []


def test_grp0_a_redelivered_input_reemits_its_own_events_even_after_later_inputs():
    key = Key()
    key.fire("a")  # position 0: opened, alert_added
    first = list(key.events)
    key.fire("a", now=1)  # position 1: a duplicate, emits nothing
    entry = key.entry
    again, out = group(entry, Tick(at=at(99)), 0, at(99), key.rules)
    assert again == entry and out == first
    assert group(entry, Tick(at=at(99)), 1, at(99), key.rules)[1] == []


def test_grp0_a_redelivered_tick_reemits_the_opening_it_caused():
    key = Key(group_wait=timedelta(seconds=30))
    key.fire("a")
    key.tick(30)  # position 1
    entry = key.entry
    again, out = group(entry, Tick(at=at(99)), 1, at(99), key.rules)
    assert again == entry and out == key.events and [e.kind.value for e in out] == ["opened", "alert_added"]


def test_grp14_grp15_a_flapping_alert_holds_notifications_until_the_hold_down_ends():
    key = Key()
    key.fire("a")
    grouped = group_labels(alert(instance="a", alertname="X", service="s").labels, ("alertname", "service"))
    flapping = AlertEvent(
        status="resolved",
        policy="p",
        correlation_key=f"p:{correlation_key(grouped)}",
        group_labels=grouped,
        alert=alert("resolved", ends=60, instance="a", alertname="X", service="s"),
        at=at(60),
        flapping_until=at(60 + 900),
        source_position=100,
    )
    key.fire("b", now=30)
    assert key._apply(flapping, 60) == ["flapping_started", "alert_resolved"]
    assert [e.notify for e in key.events[-2:]] == [False, False]
    assert key.entry.due_at == at(960)
    assert key.tick(960) == ["flapping_ended"]
    assert key.events[-1].notify is True


def test_grp10_a_flapping_alert_reopens_its_incident_after_the_reopen_window_while_it_flaps():
    key = Key()  # reopen_window 0: a plain re-firing would open a new incident
    key.fire("a")
    grouped = group_labels(alert(instance="a", alertname="X", service="s").labels, ("alertname", "service"))
    flapping = AlertEvent(
        status="resolved",
        policy="p",
        correlation_key=f"p:{correlation_key(grouped)}",
        group_labels=grouped,
        alert=alert("resolved", ends=60, instance="a", alertname="X", service="s"),
        at=at(60),
        flapping_until=at(60 + 900),
        source_position=key.position,
    )
    assert key._apply(flapping, 60) == ["flapping_started", "alert_resolved", "resolved"]
    assert key.tick(300) == []  # kept while the hold-down runs (GRP-11 waits for it)
    assert key.fire("a", now=400) == ["reopened", "alert_added"]
    assert len(key.ids()) == 1
    key.resolve("a", now=500)
    key.tick(960)  # hold-down over: forgotten
    assert key.fire("a", now=1000)[0] == "opened" and len(key.ids()) == 2


def test_grp16_a_suppressed_alert_opens_nothing():
    key = Key()
    grouped = group_labels(alert(instance="a", alertname="X", service="s").labels, ("alertname", "service"))
    silenced = AlertEvent(
        status="firing",
        policy="p",
        correlation_key=f"p:{correlation_key(grouped)}",
        group_labels=grouped,
        alert=alert(instance="a", alertname="X", service="s"),
        at=at(0),
        suppressed_by="silence:abc",
    )
    assert key._apply(silenced, 0) == []


def test_grp17_recurring_incidents_make_a_problem_linking_them():
    key = Key()  # default: 3 recurrences within 7 days
    for n in range(3):
        key.fire("a", now=n * 3600, starts=n * 3600)
        key.resolve("a", now=n * 3600 + 60)
    problem = [e for e in key.events if e.kind.value == "problem_detected"]
    assert len(problem) == 1 and len(problem[0].related) == 3 and problem[0].problem_id.startswith("prb-")
    assert problem[0].related == key.ids()


def test_grp00_a_reemitted_firing_arriving_after_the_resolve_changes_nothing():
    # A redelivered dedup record re-emits its firing event after downstream already saw the resolve.
    key = Key()
    grouped = group_labels(alert(instance="a", alertname="X", service="s").labels, ("alertname", "service"))

    def event(status, source, now):
        a = alert(status, ends=now if status == "resolved" else None, instance="a", alertname="X", service="s")
        return AlertEvent(
            status=status,
            policy="p",
            correlation_key=f"p:{correlation_key(grouped)}",
            group_labels=grouped,
            alert=a,
            at=at(now),
            source_position=source,
        )

    firing = event("firing", 10, 0)
    assert key._apply(firing, 0) == ["opened", "alert_added"]
    assert key._apply(event("resolved", 11, 5), 5) == ["alert_resolved", "resolved"]
    assert key._apply(firing, 6) == []
    assert len(key.ids()) == 1


def test_grp19_an_incident_waits_for_its_minimum_of_alerts_then_opens_at_once():
    key = Key(min_alerts=3)
    assert key.fire("a", now=0) == []
    assert key.fire("a", now=5) == []  # the same alert again is not a second one
    assert key.fire("b", now=10) == []
    assert key.fire("c", now=20) == ["opened", "alert_added", "alert_added", "alert_added"]
    assert key.events[0].rule == "GRP-19"


def test_grp20_below_the_minimum_within_its_window_nobody_is_paged():
    key = Key(min_alerts=3, min_within=timedelta(minutes=10))
    key.fire("a", now=0)
    key.fire("b", now=60)
    assert key.entry.due_at == at(600)
    assert key.tick(599) == []
    assert key.tick(600) == [] and key.events == []
    # The window starts again with the next alert: two older ones no longer count towards it.
    assert key.fire("c", now=700) == []
    assert key.fire("d", now=710) == []
    assert key.fire("e", now=720) == ["opened", "alert_added", "alert_added", "alert_added"]


def test_a_resolve_takes_an_alert_out_of_the_count():
    key = Key(min_alerts=2)
    key.fire("a", now=0)
    key.resolve("a", now=5)
    assert key.fire("b", now=10) == []  # a is gone: b alone is below the minimum


def test_grp19_min_services_counts_distinct_services():
    key = Key(group_by=("alertname",), min_services=2)
    assert key.fire("a", now=0, service="web") == []
    assert key.fire("b", now=1, service="web") == []
    assert key.fire("c", now=2, service="db") == ["opened", "alert_added", "alert_added", "alert_added"]


def test_group_wait_and_a_minimum_together_open_at_the_later_of_the_two():
    key = Key(group_wait=timedelta(seconds=30), min_alerts=2)
    key.fire("a", now=0)
    assert key.fire("b", now=10) == []  # minimum met, group_wait not over
    assert key.entry.due_at == at(30)
    assert key.tick(30) == ["opened", "alert_added", "alert_added"]
    assert key.events[0].rule == "GRP-3"


def test_quiet_resolve_ends_an_alert_its_source_stopped_sending_and_a_later_copy_fires_anew():
    """GRP-21 and DUP-7/8 through both stages: a source that never sends resolved, repeating every minute."""
    from correlation.engine import Engine, State

    rules = Rules(PolicySet(policies=(Policy(name="p", group_by=("alertname",), quiet_resolve=timedelta(minutes=10)),)))
    engine, state = Engine(rules), State(decisions=[])
    firing = alert(alertname="QueueStuck", service="billing", instance="a")
    events = []
    for minute in range(0, 6):  # sent at 0..5 min, then never again
        events += engine.apply(state, firing, at(minute * 60))[1]
    seen = [when for e in state.groups.values() for inc in e.incidents.values() for when, _ in inc.seen.values()]
    assert seen == [at(4 * 60)], "renewed by the refresh at 4 min (a third of quiet_resolve after the first send)"
    assert [e.kind.value for e in events] == ["opened", "alert_added"]
    # Never before 10 min after the last copy (5 min); at the last renewal + 4/3 of 10 min at the latest.
    assert engine.tick(state, at(15 * 60))[1] == []
    ended = engine.tick(state, at(17 * 60 + 20))[1]
    assert [(e.kind.value, e.rule) for e in ended] == [("alert_resolved", "GRP-21"), ("resolved", "GRP-9")]
    assert ended[0].alert is not None and ended[0].alert.status.value == "resolved"
    assert "quiet for 0:10:00" in ended[0].comment
    assert any(d.kind.value == "quiet_resolved" for d in state.decisions)
    # The source comes back: dedup fires it anew (DUP-7) and it opens a new incident.
    again = engine.apply(state, firing, at(30 * 60))[1]
    assert [e.kind.value for e in again] == ["opened", "alert_added"] and again[0].incident_id != events[0].incident_id


def test_quiet_resolve_is_renewed_by_repeats_and_a_refresh_never_opens_an_incident():
    from correlation.engine import Engine, State

    rules = Rules(PolicySet(policies=(Policy(name="p", group_by=("alertname",), quiet_resolve=timedelta(minutes=10)),)))
    engine, state = Engine(rules), State()
    firing = alert(alertname="QueueStuck", service="billing", instance="a")
    opened = engine.apply(state, firing, at(0))[1]
    for minute in range(1, 60):  # repeats every minute for an hour: never quiet for 10 minutes
        engine.apply(state, firing, at(minute * 60))
        assert engine.tick(state, at(minute * 60 + 1))[1] == []
    # Resolved by hand while the source still sends it (GRP-25): its next copy fires anew (DUP-10) and, with no
    # reopen window, opens one new incident; the copies after that are repeats within it.
    from schemas import CommandAction, IncidentCommand

    engine.command(
        state,
        IncidentCommand(
            action=CommandAction.resolve,
            incident_id=opened[0].incident_id,
            correlation_key=opened[0].correlation_key,
            actor="ana",
            at=at(3601),
        ),
    )
    later = []
    for minute in range(61, 80):
        later += engine.apply(state, firing, at(minute * 60))[1]
    assert [e.kind.value for e in later] == ["opened", "alert_added"] and later[0].incident_id != opened[0].incident_id
