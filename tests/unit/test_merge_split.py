"""People merging and splitting incidents (GRP-30, GRP-31): the grouping stage, the read model, the decision log
and paging, with the commands built as the API builds them (ingest/regroup_api.py: a snapshot of the read model)."""

from __future__ import annotations

from datetime import timedelta

from correlation.decisions import after_group
from correlation.escalation import Reaction, reaction
from correlation.explain import incident_report
from correlation.grouping import group
from correlation.projection import project
from correlation.virtual_pager import VirtualPager
from ingest.regroup_api import command_for
from schemas import CommandAction, IncidentCommand, IncidentEventKind, IncidentStatus, Tick
from schemas.decision import DecisionKind
from schemas.notification import NotificationsFile
from tests.factories import alert, at
from tests.unit.test_grouping import Key


class People(Key):
    """A correlation key whose read model is folded from its events, so merges and splits carry the snapshot the API
    would send; each decision the stage takes is logged as the worker logs it."""

    def __init__(self, **policy):
        super().__init__(**policy)
        self.read = {}
        self.decisions = []

    def _apply(self, item, now):
        before, first = self.entry, len(self.events)
        kinds = super()._apply(item, now)
        self.decisions += after_group(item, before, self.entry, self.events[first:], self.rules, at(now))
        for event in self.events[first:]:
            self.read[event.incident_id] = (
                project(self.read.get(event.incident_id), event) or self.read[event.incident_id]
            )
        return kinds

    def merge(self, source, into, now, actor="alice"):
        return self._apply(
            command_for(CommandAction.merge, self.read[source], actor, "one outage", at(now), into=into), now
        )

    def split(self, source, fingerprints, now, actor="bob"):
        return self._apply(
            command_for(CommandAction.split, self.read[source], actor, "", at(now), alerts=fingerprints), now
        )

    def of(self, incident_id):
        return [e for e in self.events if e.incident_id == incident_id]


def fp(instance, service="s", **labels):
    return alert(instance=instance, alertname="X", service=service, **labels).fingerprint


def two_incidents(**policy) -> tuple[People, str, str]:
    """a in the first incident; b, fired after the group window, in the second."""
    key = People(group_window=timedelta(minutes=5), **policy)
    key.fire("a", now=0)
    key.fire("b", now=400)
    first, second = key.ids()
    return key, first, second


def test_grp30_merge_moves_every_alert_into_the_target_and_ends_the_source():
    key, first, second = two_incidents()
    assert key.merge(second, first, now=500) == ["merged", "merged_in", "alert_added"]
    merged, merged_in, added = key.events[-3:]
    assert (merged.incident_id, merged.rule, merged.actor, merged.related) == (second, "GRP-30", "alice", [first])
    assert merged.comment == f"merged into {first}: one outage"  # the event names the actor
    assert (merged_in.incident_id, merged_in.related) == (first, [second, fp("b")])
    assert (added.incident_id, added.alert.fingerprint, added.actor) == (first, fp("b"), "alice")
    assert second not in key.entry.incidents
    assert set(key.entry.incidents[first].alerts) == {fp("a"), fp("b")}
    source, target = key.read[second], key.read[first]
    assert (source.status, source.merged_into, source.resolved_by, source.alerts) == (
        IncidentStatus.resolved,
        first,
        "alice",
        {},
    )
    assert set(target.alerts) == {fp("a"), fp("b")} and target.merged_from == [second]
    assert target.alerts[fp("b")].labels["instance"] == "b"


def test_grp30_a_later_copy_of_a_moved_alert_goes_to_the_target():
    key, first, second = two_incidents()
    key.merge(second, first, now=500)
    assert key.resolve("b", now=510) == ["alert_resolved"]
    assert key.events[-1].incident_id == first
    assert key.fire("b", now=520, starts=520) == ["alert_added"]
    assert key.events[-1].incident_id == first and key.events[-1].rule == "GRP-6"
    assert key.read[first].alerts[fp("b")].status == "firing"


def test_grp30_a_merged_incident_never_reopens_its_alerts_reopen_the_target():
    key, first, second = two_incidents(reopen_window=timedelta(minutes=30))
    key.merge(second, first, now=500)
    key.resolve("a", now=510)
    assert key.resolve("b", now=520) == ["alert_resolved", "resolved"]
    assert key.fire("b", now=600, starts=600) == ["reopened", "alert_added"]
    assert {e.incident_id for e in key.events[-2:]} == {first}
    assert key.read[second].status == IncidentStatus.resolved


def test_grp30_the_target_takes_the_higher_severity_and_both_services():
    key = People(group_by=("alertname",), max_alerts=1)
    key.fire("a", now=0, service="web", severity="warning")
    key.fire("b", now=1, service="db", severity="critical")
    first, second = key.ids()
    assert key.merge(second, first, now=5) == ["merged", "merged_in", "alert_added", "severity_changed", "root_changed"]
    target = key.entry.incidents[first]
    assert (target.severity, target.services, target.probable_root) == ("critical", ["db", "web"], None)
    assert key.read[first].severity == "critical"


def test_grp30_new_alerts_join_the_target_when_the_source_was_the_keys_current_incident():
    key = People()
    key.fire("a", now=0)
    key.fire("b", now=1)
    source = key.ids()[0]
    key.split(source, [fp("b")], now=2)
    new = key.ids()[1]
    key.merge(source, new, now=3)  # the source was where the key's new alerts went
    assert key.fire("c", now=4) == ["alert_added"] and key.events[-1].incident_id == new


def test_grp31_split_opens_a_new_incident_that_later_copies_of_its_alerts_go_to():
    key = People()
    for n, instance in enumerate("abc"):
        key.fire(instance, now=n)
    source = key.ids()[0]
    assert key.split(source, [fp("b"), fp("c")], now=10) == ["alerts_split", "opened", "alert_added", "alert_added"]
    split, opened = key.events[-4:-2]
    new = opened.incident_id
    assert new != source and new.startswith("inc-")
    assert (split.incident_id, split.rule, split.actor, split.related) == (
        source,
        "GRP-31",
        "bob",
        [new, fp("b"), fp("c")],
    )
    assert (opened.rule, opened.actor, opened.related, opened.alert.fingerprint) == ("GRP-31", "bob", [source], fp("b"))
    assert set(key.entry.incidents[source].alerts) == {fp("a")}
    assert set(key.entry.incidents[new].alerts) == {fp("b"), fp("c")}
    assert set(key.read[source].alerts) == {fp("a")} and key.read[source].split_into == [new]
    assert set(key.read[new].alerts) == {fp("b"), fp("c")} and key.read[new].split_from == source
    assert key.resolve("b", now=20) == ["alert_resolved"] and key.events[-1].incident_id == new
    assert key.fire("b", now=30, starts=30) == ["alert_added"] and key.events[-1].incident_id == new
    assert (
        key.fire("d", now=40) == ["alert_added"] and key.events[-1].incident_id == source
    )  # new alerts: the key's current


def test_grp31_the_new_incident_is_titled_ranked_and_rooted_by_its_own_alerts():
    key = People(group_by=("alertname",))
    key.fire("a", now=0, service="web", severity="warning")
    key.fire("b", now=1, service="db", severity="critical")
    source = key.ids()[0]
    assert key.split(source, [fp("b", "db", severity="critical")], now=5) == [
        "alerts_split",
        "root_changed",
        "severity_changed",
        "opened",
        "alert_added",
    ]
    new = key.ids()[1]
    assert (key.read[new].title, key.read[new].severity, key.read[new].probable_root) == ("X on db", "critical", "db")
    assert key.entry.incidents[source].services == ["web"] and key.read[source].probable_root == "web"
    # the person took the critical alert out: the source ranks by what is left
    assert key.read[source].severity == "warning" and key.entry.incidents[source].severity == "warning"


def test_grp31_a_split_title_like_the_sources_names_where_it_came_from():
    key = People()
    key.fire("a", now=0)
    key.fire("b", now=1)
    source = key.ids()[0]
    key.split(source, [fp("b")], now=5)
    assert key.read[key.ids()[1]].title == f"X on s (split from {source})"


def test_grp31_a_source_left_without_firing_alerts_resolves_after_its_resolve_timeout():
    key = People(resolve_timeout=timedelta(minutes=5))
    key.fire("a", now=0)
    key.fire("b", now=1)
    key.resolve("a", now=2)
    source = key.ids()[0]
    assert key.split(source, [fp("b")], now=10) == ["alerts_split", "opened", "alert_added"]
    assert key.tick(10 + 299) == []
    assert key.tick(10 + 300) == ["resolved"] and key.events[-1].incident_id == source
    assert key.read[key.ids()[1]].status == IncidentStatus.triggered


def test_grp31_with_no_resolve_timeout_the_source_resolves_at_once():
    key = People()
    key.fire("a", now=0)
    key.fire("b", now=1)
    key.resolve("a", now=2)
    source = key.ids()[0]
    assert key.split(source, [fp("b")], now=10) == ["alerts_split", "resolved", "opened", "alert_added"]
    assert (key.events[-3].incident_id, key.events[-3].rule) == (source, "GRP-9")


def test_merges_and_splits_that_no_longer_fit_change_nothing_and_the_decision_log_says_why():
    key, first, second = two_incidents()
    stale = command_for(CommandAction.merge, key.read[second], "alice", "", at(500), into=first)
    key.resolve("a", now=450)  # the target resolved after the person looked
    assert key._apply(stale, 500) == []
    assert second in key.entry.incidents
    [refused] = [d for d in key.decisions if d.kind is DecisionKind.command_refused]
    assert (refused.incident_id, refused.rule, refused.detail["actor"]) == (second, "GRP-30", "alice")
    assert f"{first} is not an open incident of" in refused.reason

    key = People()
    key.fire("a", now=0)
    key.fire("b", now=1)
    source = key.ids()[0]
    whole = command_for(CommandAction.split, key.read[source], "bob", "", at(5), alerts=[fp("a"), fp("b")])
    assert key._apply(whole, 5) == []
    assert "nothing would remain" in key.decisions[-1].reason
    gone = IncidentCommand(
        action=CommandAction.split,
        incident_id=source,
        correlation_key=key.entry.correlation_key,
        actor="bob",
        at=at(6),
        alerts=["0" * 16],
    )
    assert key._apply(gone, 6) == [] and "none of the chosen alerts" in key.decisions[-1].reason


def test_grp0_a_redelivered_merge_or_split_reemits_its_own_events():
    key, first, second = two_incidents()
    key.merge(second, first, now=500)
    entry, merge_at = key.entry, key.position - 1
    key.split(first, [fp("b")], now=710)
    split = key.events[-3:]
    assert [e.kind.value for e in split] == ["alerts_split", "opened", "alert_added"]
    assert group(key.entry, Tick(at=at(800)), key.position - 1, at(800), key.rules) == (key.entry, split)
    assert group(key.entry, Tick(at=at(800)), merge_at, at(800), key.rules)[1] == key.events[-6:-3]
    assert [e.kind.value for e in key.events[-6:-3]] == [
        "merged",
        "merged_in",
        "alert_added",
    ] and entry is not key.entry


def test_explain_shows_who_merged_and_split_and_why_each_alert_moved():
    key, first, second = two_incidents()
    key.merge(second, first, now=500)
    report = incident_report(first, [d for d in key.decisions if d.incident_id == first])
    assert any(f"{second} merged in, 1 alert (1 firing) by alice: one outage" in line for line in report["lifecycle"])
    assert "moved here by a person's merge" in report["alerts"][fp("b")][-1]
    source = incident_report(second, [d for d in key.decisions if d.incident_id == second])
    assert any(f"merged into {first} by alice" in line for line in source["lifecycle"])
    key.split(first, [fp("b")], now=520)
    [split] = [d for d in key.decisions if d.kind is DecisionKind.alerts_split]
    assert (split.detail["actor"], split.detail["alerts"], split.detail["into"]) == ("bob", "1", key.ids()[-1])


def test_paging_stops_for_a_merged_incident_and_a_split_off_one_pages_on_its_own():
    config = NotificationsFile.model_validate(
        {
            "channels": {"pager": {"type": "webhook", "url": "http://pager.example/hook"}},
            "users": {"ana": {"contacts": [{"channel": "pager", "address": "ana"}]}},
            "escalation_policies": {
                "oncall": {
                    "levels": [
                        {"targets": [{"user": "ana"}], "delay": "10m"},
                        {"targets": [{"user": "ana"}], "delay": "10m"},
                    ]
                }
            },
            "default_policy": "oncall",
        }
    )
    key, first, second = two_incidents()
    pager = VirtualPager(config, key.rules.topology, key.rules.service_label, lambda a, t: None)
    for event in key.events:
        pager.observe(event, key.read[event.incident_id])
    pager.escalate(at(400), key.read)
    assert {p.incident_id for p in pager.pages} == {first, second}
    seen = len(key.events)
    key.merge(second, first, now=450)
    key.split(first, [fp("b")], now=470)
    new = key.ids()[-1]
    for event in key.events[seen:]:
        pager.observe(event, key.read[event.incident_id])
    pager.escalate(at(2000), key.read)
    later = [(p.incident_id, p.level) for p in pager.pages if p.at > at(400)]
    assert (new, 1) in later and (new, 2) in later and (first, 2) in later
    assert all(incident != second for incident, _ in later), "the merged incident's level 2 never pages"


def test_what_merge_and_split_events_mean_for_paging():
    key, first, second = two_incidents()
    key.merge(second, first, now=500)
    merged, merged_in = key.events[-3:-1]
    assert reaction(merged, key.read[second]) is Reaction.stop
    assert reaction(merged_in, key.read[first]) is Reaction.update
    key.split(first, [fp("b")], now=520)
    split = next(e for e in key.events if e.kind is IncidentEventKind.alerts_split)
    opened = key.events[-2]
    assert reaction(split, key.read[first]) is Reaction.update
    assert reaction(opened, key.read[opened.incident_id]) is Reaction.start


def test_replays_report_follows_a_merge_and_a_split():
    from correlation.replay import Report

    key, first, second = two_incidents()
    key.fire("c", now=420)
    key.merge(second, first, now=500)
    key.split(first, [fp("c")], now=600)
    report = Report()
    for event in key.events:
        report.observe(event)
    third = key.ids()[-1]
    assert report.incidents[second].status == "merged" and report.incidents[second].members == {}
    assert set(report.incidents[first].members) == {fp("a"), fp("b")}
    assert set(report.incidents[third].members) == {fp("c")}
