from datetime import timedelta

import pytest
from pydantic import ValidationError

from correlation.engine import Engine, State
from correlation.policy import Policy, PolicySet
from correlation.rules import Rules
from correlation.topology import Topology
from tests.factories import alert, at

# db <- api <- web ; db <- reports ; cache stands alone
CATALOG = Topology.model_validate(
    {
        "services": [
            {"name": "db"},
            {"name": "cache"},
            {"name": "api", "depends_on": ["db"]},
            {"name": "web", "depends_on": ["api", "cache"]},
            {"name": "reports", "depends_on": ["db"]},
        ]
    }
)


def test_hops_are_the_fewest_dependency_steps_to_each_service_depended_on():
    assert CATALOG.hops("web") == {"api": 1, "cache": 1, "db": 2}
    assert CATALOG.hops("reports") == {"db": 1} and CATALOG.hops("db") == {}
    assert "reports" not in CATALOG.hops("api")  # siblings on db: neither depends on the other


def test_root_is_the_most_upstream_member():
    assert CATALOG.root_of(["web", "api", "db"]) == "db"
    assert CATALOG.root_of(["web", "api"]) == "api"


def test_unknown_dependencies_and_duplicates_are_refused():
    with pytest.raises(ValidationError, match="does not list"):
        Topology.model_validate({"services": [{"name": "a", "depends_on": ["ghost"]}]})
    with pytest.raises(ValidationError, match="unique"):
        Topology.model_validate({"services": [{"name": "a"}, {"name": "a"}]})


def test_a_cycle_in_the_catalog_does_not_hang():
    looped = Topology.model_validate(
        {"services": [{"name": "a", "depends_on": ["b"]}, {"name": "b", "depends_on": ["a"]}]}
    )
    assert looped.hops("a") == {"b": 1} and looped.root_of(["a", "b"]) in ("a", "b")


def engine(window_minutes=10) -> Engine:
    policy = Policy(name="graph", topology=True, group_window=timedelta(minutes=window_minutes))
    return Engine(Rules(PolicySet(policies=(policy,)), topology=CATALOG))


def fire(eng, state, service, now, alertname="HighErrorRate"):
    _, events = eng.apply(
        state, alert(starts=now, received=now, alertname=alertname, service=service, instance="i1"), at(now)
    )
    return events


def test_alerts_along_a_chain_join_one_incident_and_the_root_moves_upstream():
    eng, state = engine(), State()
    first = fire(eng, state, "web", 0)
    second = fire(eng, state, "api", 30, alertname="HighLatency")
    third = fire(eng, state, "db", 60, alertname="InstanceDown")
    ids = {e.incident_id for e in first + second + third}
    assert len(ids) == 1
    assert [e.kind.value for e in third] == ["alert_added", "root_changed"]
    assert third[-1].probable_root == "db"


def test_unrelated_services_open_separate_incidents():
    eng, state = engine(), State()
    a = fire(eng, state, "api", 0)
    b = fire(eng, state, "reports", 10)
    c = fire(eng, state, "cache", 20)
    assert len({e.incident_id for e in a + b + c}) == 3


def test_outside_the_window_a_related_alert_opens_a_new_incident():
    eng, state = engine(window_minutes=5), State()
    a = fire(eng, state, "db", 0)
    b = fire(eng, state, "web", 301)
    assert a[0].incident_id != b[0].incident_id


def test_a_service_related_only_to_a_symptom_not_to_the_root_opens_its_own_incident():
    # web depends on api and cache; with api the incident's root, a cache alert is another failure,
    # even though web (a member) depends on cache too.
    eng, state = engine(), State()
    first = fire(eng, state, "api", 0)
    fire(eng, state, "web", 20)
    cache = fire(eng, state, "cache", 40)
    assert cache[0].kind.value == "opened" and cache[0].incident_id != first[0].incident_id


# -- time, failure domains and changes as evidence (bench/worlds.py measures what these buy) ------------------


def session_engine(gap: str | None = "2m", **fields) -> Engine:
    policy = Policy.model_validate(
        {"name": "graph", "topology": True, **({"session_gap": gap} if gap != "default" else {}), **fields}
    )
    return Engine(Rules(PolicySet(policies=(policy,)), topology=CATALOG))


def fire_labels(eng, state, now, **labels):
    _, events = eng.apply(state, alert(starts=now, received=now, **labels), at(now))
    return events


def test_topology_policies_default_to_a_session_gap_and_null_turns_it_off():
    assert Policy(name="graph", topology=True).session_gap == timedelta(minutes=2)
    assert Policy.model_validate({"name": "graph", "topology": True, "session_gap": None}).session_gap is None
    assert Policy(name="plain", group_by=("alertname",)).session_gap is None
    with pytest.raises(ValidationError, match="session_gap must be positive"):
        Policy.model_validate({"name": "graph", "topology": True, "session_gap": "0s"})


def test_a_symptom_joins_within_the_session_gap_of_the_member_it_depends_on_and_says_why():
    eng, state = session_engine(), State()
    first = fire(eng, state, "db", 0, alertname="InstanceDown")
    joined = fire(eng, state, "api", 100)
    assert joined[0].incident_id == first[0].incident_id and joined[0].rule == "GRP-5"
    assert joined[0].evidence == {"topology": "api depends on db (1 hop)", "time_gap_seconds": "100"}


def test_a_symptom_long_after_its_dependency_last_alerted_is_another_failure():
    eng, state = session_engine(), State()
    first = fire(eng, state, "db", 0, alertname="InstanceDown")
    late = fire(eng, state, "api", 20 * 60)
    assert late[0].kind.value == "opened" and late[0].incident_id != first[0].incident_id
    # without a session gap time is no evidence: the chain alone joins it
    eng, state = session_engine(gap=None), State()
    first = fire(eng, state, "db", 0, alertname="InstanceDown")
    assert fire(eng, state, "api", 20 * 60)[0].incident_id == first[0].incident_id


def test_the_gap_runs_from_the_latest_member_on_the_chain_and_widens_per_hop():
    eng, state = session_engine(), State()
    first = fire(eng, state, "db", 0, alertname="InstanceDown")
    # web is two hops from db (api, in between, stays quiet): up to two gaps
    assert fire(eng, state, "web", 200)[0].incident_id == first[0].incident_id
    # api alerting now links through web? No: api does not depend on web; it depends on db, 300 s ago (one hop)
    api = fire(eng, state, "api", 300)
    assert api[0].kind.value == "opened"


def test_an_upstream_cause_joins_only_while_the_incident_is_young():
    eng, state = session_engine(), State()
    first = fire(eng, state, "api", 0)
    cause = fire(eng, state, "db", 60, alertname="InstanceDown")
    assert cause[0].incident_id == first[0].incident_id
    assert "api, its probable root, depends on db" in cause[0].evidence["topology"]
    eng, state = session_engine(), State()
    first = fire(eng, state, "api", 0)
    fire(eng, state, "web", 100)  # the incident stays busy, but it started 5 minutes before db alerts
    late = fire(eng, state, "db", 300, alertname="InstanceDown")
    assert late[0].kind.value == "opened" and late[0].incident_id != first[0].incident_id


def test_failure_domains_keep_clusters_apart_and_an_alert_without_one_is_shared():
    eng, state = session_engine(), State()
    a = fire_labels(eng, state, 0, alertname="InstanceDown", service="db", instance="db-1", cluster="eu")
    b = fire_labels(eng, state, 10, alertname="HighErrorRate", service="api", instance="api-1", cluster="us")
    c = fire_labels(eng, state, 20, alertname="HighErrorRate", service="api", instance="api-2", cluster="eu")
    d = fire_labels(eng, state, 30, alertname="HighErrorRate", service="web", instance="web-1")
    assert b[0].kind.value == "opened" and b[0].incident_id != a[0].incident_id
    assert c[0].incident_id == a[0].incident_id and c[0].evidence["failure_domain"] == "cluster=eu"
    assert d[0].kind.value == "alert_added"  # no cluster label: not scoped by it


def test_failure_domain_labels_are_the_policys_to_choose():
    eng, state = session_engine(failure_domain=[]), State()
    a = fire_labels(eng, state, 0, alertname="InstanceDown", service="db", instance="db-1", cluster="eu")
    b = fire_labels(eng, state, 10, alertname="HighErrorRate", service="api", instance="api-1", cluster="us")
    assert b[0].incident_id == a[0].incident_id


def test_an_alert_on_a_service_the_incident_suspects_a_change_of_joins_it():
    from schemas import ChangeEvent

    eng, state = session_engine(), State()
    eng.add_change(state, ChangeEvent(id="chg-7", service="cache", summary="cache 7.2", at=at(-300)))
    first = fire(eng, state, "web", 0)
    assert any(e.kind.value == "change_suspected" for e in first)
    later = fire(eng, state, "cache", 15 * 60, alertname="Evictions")  # long after, and cache is upstream of web
    assert later[0].incident_id == first[0].incident_id and later[0].rule == "GRP-32"
    assert later[0].evidence["change"].startswith("chg-7: the incident suspects a change to cache")


def test_without_a_topology_a_session_gap_ends_the_keys_incident():
    policy = Policy.model_validate({"name": "plain", "group_by": ["alertname"], "session_gap": "5m"})
    eng, state = Engine(Rules(PolicySet(policies=(policy,)), topology=CATALOG)), State()
    first = fire(eng, state, "api", 0)
    assert fire(eng, state, "web", 200)[0].evidence == {
        "labels": "alertname=HighErrorRate",
        "session_gap_seconds": "200",
    }
    late = fire(eng, state, "db", 200 + 301)
    assert late[0].kind.value == "opened" and late[0].incident_id != first[0].incident_id


def test_explain_says_which_evidence_decided_a_join():
    from correlation.decisions import after_group  # noqa: F401 - the decision log is built from the same events

    eng, state = session_engine(), State(decisions=[])
    fire(eng, state, "db", 0, alertname="InstanceDown")
    fire(eng, state, "api", 42)
    joined = [d for d in state.decisions if d.kind.value == "joined" and d.rule == "GRP-5"]
    assert joined and "topology: api depends on db (1 hop); time gap (s): 42" in joined[0].reason
    assert joined[0].detail["evidence.time_gap_seconds"] == "42"
    # and an alert that joined nothing says why it opened its own
    fire(eng, state, "cache", 60, alertname="Evictions")
    opened = [d for d in state.decisions if d.kind.value == "joined" and d.rule == "GRP-1"]
    assert "because: none of the 1 open incident(s) in its failure domain links to it" in opened[-1].reason
    assert "because: no incident of its key was open" in opened[0].reason


def test_failure_domain_takes_a_label_or_a_list_and_refuses_what_cannot_scope():
    assert Policy.model_validate({"name": "g", "topology": True, "failure_domain": "cluster"}).failure_domain == (
        "cluster",
    )
    assert Policy.model_validate(
        {"name": "g", "topology": True, "failure_domain": "cluster, region"}
    ).failure_domain == ("cluster", "region")
    for bad, message in (([""], "empty label name"), (["cluster", "cluster"], "lists a label twice")):
        with pytest.raises(ValidationError, match=message):
            Policy.model_validate({"name": "g", "topology": True, "failure_domain": bad})
    with pytest.raises(ValidationError, match="failure_domain scopes topology joins"):
        Policy.model_validate({"name": "g", "group_by": ["service"], "failure_domain": ["cluster"]})
