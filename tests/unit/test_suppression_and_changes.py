from datetime import timedelta

from correlation.engine import Engine, State
from correlation.policy import InhibitRule, Policy, PolicySet
from correlation.redelivery import replayed
from correlation.rules import Rules
from correlation.topology import Topology
from schemas import ChangeEvent, Silence
from tests.factories import alert, at

POLICY = Policy(name="p", group_by=("alertname", "service"))


def engine(**policyset) -> Engine:
    topology = Topology.model_validate({"services": [{"name": "db"}, {"name": "api", "depends_on": ["db"]}]})
    return Engine(Rules(PolicySet(policies=(POLICY,), **policyset), topology=topology))


def silence(matchers, start=0, end=3600) -> Silence:
    return Silence(
        id="s1", matchers=matchers, starts_at=at(start), ends_at=at(end), created_by="ops", comment="maintenance"
    )


def fire(eng, state, now, **labels):
    _, events = eng.apply(state, alert(starts=now, received=now, **labels), at(now))
    return events


def test_a_silenced_alert_is_recorded_with_the_silence_but_opens_nothing():
    eng, state = engine(), State(silences=[silence(['service="db"'])])
    assert fire(eng, state, 0, alertname="Down", service="db", instance="a") == []
    entry = next(iter(state.fingerprints.values()))
    assert entry.suppressed_by == "silence:s1" and state.outcomes["suppressed"] == 1


def test_when_the_silence_ends_the_next_repeat_opens_the_incident():
    eng, state = engine(), State(silences=[silence(['service="db"'], end=600)])
    fire(eng, state, 0, alertname="Down", service="db", instance="a")
    assert [e.kind.value for e in fire(eng, state, 601, alertname="Down", service="db", instance="a")] == [
        "opened",
        "alert_added",
    ]


def test_silences_only_cover_what_all_their_matchers_match():
    eng, state = engine(), State(silences=[silence(['service="db"', 'instance="a"'])])
    assert fire(eng, state, 0, alertname="Down", service="db", instance="b") != []


def test_a_firing_source_inhibits_targets_with_equal_labels_only():
    rule = InhibitRule(
        name="db-down", source_matchers=('alertname="Down"',), target_matchers=('alertname="Slow"',), equal=("cluster",)
    )
    eng, state = engine(inhibit_rules=(rule,)), State()
    fire(eng, state, 0, alertname="Down", service="db", cluster="eu", instance="a")
    assert fire(eng, state, 10, alertname="Slow", service="api", cluster="eu", instance="a") == []
    assert fire(eng, state, 20, alertname="Slow", service="api", cluster="us", instance="a") != []
    inhibited = [e for e in state.fingerprints.values() if e.suppressed_by]
    assert [e.suppressed_by for e in inhibited] == ["inhibit:db-down"]


def test_an_alert_matching_both_sides_does_not_inhibit_itself():
    rule = InhibitRule(name="self", source_matchers=('severity="critical"',), target_matchers=('severity="critical"',))
    eng, state = engine(inhibit_rules=(rule,)), State()
    assert fire(eng, state, 0, alertname="Down", service="db", severity="critical", instance="a") != []


def test_a_change_to_a_dependency_shortly_before_the_opening_is_a_suspect():
    deploy = ChangeEvent(id="c1", service="db", summary="postgres 16.2", author="alice", at=at(-600))
    too_old = ChangeEvent(id="c0", service="db", summary="old", at=at(-7200))
    elsewhere = ChangeEvent(id="c2", service="web", summary="unrelated", at=at(-60))
    eng, state = engine(change_window=timedelta(hours=1)), State(changes=[deploy, too_old, elsewhere])
    events = fire(eng, state, 0, alertname="Errors", service="api", instance="a")
    suspects = [e for e in events if e.kind.value == "change_suspected"]
    assert [e.related for e in suspects] == [["c1"]]
    assert "postgres 16.2" in suspects[0].comment and suspects[0].rule == "GRP-18"
    # A redelivered opening re-emits the suspects with it.
    [entry] = state.groups.values()
    assert replayed(entry.emitted, entry.position) == events
