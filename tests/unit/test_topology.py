from datetime import timedelta

import pytest
from pydantic import ValidationError

from correlation.engine import Engine, State
from correlation.policy import Policy, PolicySet
from correlation.rules import Rules
from correlation.topology import Topology
from tests.factories import alert, at

# db <- api <- web ; db <- reports ; cache stands alone
CATALOG = Topology.model_validate({"services": [
    {"name": "db"}, {"name": "cache"},
    {"name": "api", "depends_on": ["db"]},
    {"name": "web", "depends_on": ["api", "cache"]},
    {"name": "reports", "depends_on": ["db"]},
]})


def test_related_means_on_one_dependency_chain():
    assert CATALOG.related("web", "db") and CATALOG.related("db", "web")
    assert not CATALOG.related("api", "reports")  # siblings on db, but neither depends on the other
    assert not CATALOG.related("cache", "db")


def test_root_is_the_most_upstream_member():
    assert CATALOG.root_of(["web", "api", "db"]) == "db"
    assert CATALOG.root_of(["web", "api"]) == "api"


def test_unknown_dependencies_and_duplicates_are_refused():
    with pytest.raises(ValidationError, match="does not list"):
        Topology.model_validate({"services": [{"name": "a", "depends_on": ["ghost"]}]})
    with pytest.raises(ValidationError, match="unique"):
        Topology.model_validate({"services": [{"name": "a"}, {"name": "a"}]})


def test_a_cycle_in_the_catalog_does_not_hang():
    looped = Topology.model_validate({"services": [{"name": "a", "depends_on": ["b"]}, {"name": "b", "depends_on": ["a"]}]})
    assert looped.related("a", "b") and looped.root_of(["a", "b"]) in ("a", "b")


def engine(window_minutes=10) -> Engine:
    policy = Policy(name="graph", topology=True, group_window=timedelta(minutes=window_minutes))
    return Engine(Rules(PolicySet(policies=(policy,)), topology=CATALOG))


def fire(eng, state, service, now, alertname="HighErrorRate"):
    _, events = eng.apply(state, alert(starts=now, received=now, alertname=alertname, service=service, instance="i1"), at(now))
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
