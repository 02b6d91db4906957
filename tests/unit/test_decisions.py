"""The decision log, derived from the pure stages through the offline engine (as replay and `check` use it)."""

from datetime import timedelta

from correlation.engine import Engine, State
from correlation.policy import InhibitRule, Policy, PolicySet
from correlation.rules import Rules
from schemas import Silence
from schemas.decision import DecisionKind
from tests.factories import alert, at


def rules(**overrides) -> Rules:
    policy = Policy(
        **{"name": "checkout", "match": ["service=checkout"], "group_by": ("alertname", "service"), **overrides}
    )
    return Rules(PolicySet(policies=(policy,)).with_default(("alertname",)))


def story(state: State, fingerprint: str) -> list[tuple[str, str]]:
    return [(d.kind.value, d.rule) for d in state.decisions or [] if d.fingerprint == fingerprint]


def test_a_firing_alert_names_its_policy_key_and_incident_and_repeats_are_logged_sparsely():
    engine, state = Engine(rules()), State(decisions=[])
    a = alert(alertname="Latency", service="checkout", instance="a")
    engine.apply(state, a, at(0))
    for t in range(1, 11):
        engine.apply(state, a, at(t))
    kinds = story(state, a.fingerprint)
    assert kinds[:2] == [("fired", "DUP-1"), ("joined", "GRP-1")]
    # ten repeats: logged at the 1st, 2nd, 4th and 8th
    assert [d.detail["repeats"] for d in state.decisions if d.kind is DecisionKind.deduplicated] == ["1", "2", "4", "8"]
    fired = state.decisions[0]
    assert fired.labels == a.labels and fired.policy == "checkout"
    assert 'policy `checkout` (#1) matched service="checkout"' in fired.reason
    joined = next(d for d in state.decisions if d.kind is DecisionKind.joined)
    opened = next(d for d in state.decisions if d.kind is DecisionKind.incident_opened)
    assert joined.incident_id == opened.incident_id and opened.detail["notify"] == "true"


def test_an_alert_no_policy_matches_says_so():
    engine, state = Engine(rules()), State(decisions=[])
    a = alert(alertname="Disk", service="search", instance="a")
    engine.apply(state, a, at(0))
    assert state.decisions[0].policy == "default"
    assert "no policy before it matched" in state.decisions[0].reason


def test_held_below_minimum_then_dropped_with_the_figures():
    engine, state = Engine(rules(min_alerts=3, min_within=timedelta(minutes=5))), State(decisions=[])
    a = alert(alertname="Latency", service="checkout", instance="a")
    engine.apply(state, a, at(0))
    held = [d for d in state.decisions if d.kind is DecisionKind.held]
    assert len(held) == 1 and "1 of min_alerts 3 alerts" in held[0].reason
    engine.tick(state, at(301))
    dropped = [d for d in state.decisions if d.kind is DecisionKind.dropped]
    assert [(d.fingerprint, d.rule) for d in dropped] == [(a.fingerprint, "GRP-20")]
    assert "1 of min_alerts 3 alerts" in dropped[0].reason
    assert not [d for d in state.decisions if d.kind is DecisionKind.incident_opened]


def test_silenced_alert_names_the_silence_its_author_and_comment():
    silence = Silence(
        id="s-1",
        matchers=["service=checkout"],
        startsAt=at(-60),
        endsAt=at(3600),
        createdBy="ana",
        comment="db maintenance",
    )
    engine, state = Engine(rules()), State(decisions=[], silences=[silence])
    a = alert(alertname="Latency", service="checkout", instance="a")
    engine.apply(state, a, at(0))
    kinds = story(state, a.fingerprint)
    assert kinds == [("silenced", "DUP-1"), ("kept_out", "GRP-16")]
    silenced = state.decisions[0]
    assert silenced.detail["silence"] == "s-1" and "ana: db maintenance" in silenced.reason


def test_inhibited_alert_names_the_rule_and_the_source_alert():
    rule = InhibitRule(
        name="node-down", source_matchers=["alertname=NodeDown"], target_matchers=["alertname=Latency"], equal=("node",)
    )
    policies = PolicySet(inhibit_rules=(rule,)).with_default(("alertname",))
    engine, state = Engine(Rules(policies)), State(decisions=[])
    source = alert(alertname="NodeDown", node="n1", service="infra")
    target = alert(alertname="Latency", node="n1", service="checkout")
    engine.apply(state, source, at(0))
    engine.apply(state, target, at(1))
    inhibited = next(d for d in state.decisions if d.fingerprint == target.fingerprint)
    assert inhibited.kind is DecisionKind.inhibited
    assert inhibited.detail == {
        "correlation_key": inhibited.detail["correlation_key"],
        "inhibit": "node-down",
        "source": source.fingerprint,
    }
    assert source.fingerprint in inhibited.reason


def test_flapping_alert_logs_why_notifications_hold():
    engine, state = Engine(rules()), State(decisions=[])
    labels = {"alertname": "Latency", "service": "checkout", "instance": "a"}
    for t in range(0, 12, 2):
        engine.apply(state, alert("firing", starts=t, **labels), at(t))
        engine.apply(state, alert("resolved", starts=t, ends=t + 1, **labels), at(t + 1))
    flapping = [d for d in state.decisions if d.kind is DecisionKind.flapping]
    assert flapping and "state changes within" in flapping[0].reason


def test_no_decisions_are_kept_unless_asked_for():
    engine, state = Engine(rules()), State()
    engine.apply(state, alert(alertname="Latency", service="checkout", instance="a"), at(0))
    assert state.decisions is None
