"""Learned evidence (correlation/evidence.py) and how a policy with `learn: true` joins on it."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from correlation.engine import Engine, State
from correlation.evidence import HALF_LIFE, MAX_PAIRS, Affinity, decayed, pair
from correlation.policy import Policy, PolicySet
from correlation.rules import Rules
from correlation.topology import Topology
from tests.factories import alert, at

GAP = timedelta(minutes=2)


def test_firings_within_the_gap_count_together_and_counts_decay_by_half_each_half_life():
    a = Affinity().saw_firing("@db", at(0), GAP).saw_firing("@api", at(60), GAP).saw_firing("@web", at(150), GAP)
    assert decayed(a.together.get(pair("@db", "@api")), at(60)) == 1
    assert pair("@db", "@web") not in a.together  # 150 s apart: more than the gap
    assert decayed(a.together[pair("@api", "@web")], at(150) + HALF_LIFE) == pytest.approx(0.5)


def test_a_pair_links_only_when_it_fired_together_often_and_in_most_of_the_rarer_ones_firings():
    a = Affinity()
    for n in range(3):
        a = a.saw_firing("@db", at(n * 3600), GAP).saw_firing("@api", at(n * 3600 + 30), GAP)
    link = a.learned_link("@api", "@db", at(3 * 3600))
    assert link is not None and "fired together 3.0 times" in link["co_occurrence"]
    noisy = a
    for n in range(5):  # each fails alone five more times: together in 3 of 8 firings of either
        noisy = noisy.saw_firing("@db", at(20 * 3600 + n * 3600), GAP).saw_firing(
            "@api", at(20 * 3600 + n * 3600 + 1800), GAP
        )
    assert noisy.learned_link("@api", "@db", at(40 * 3600)) is None


def test_people_splitting_a_pair_apart_outweighs_it_firing_together():
    a = Affinity()
    for n in range(3):
        a = a.saw_firing("@db", at(n * 3600), GAP).saw_firing("@api", at(n * 3600 + 30), GAP)
    split = a.people_said(["@api"], ["@db"], at(4 * 3600), merged=False)
    assert split.split_apart("@api", "@db", at(4 * 3600)) and split.learned_link("@api", "@db", at(4 * 3600)) is None
    merged = split.people_said(["@api"], ["@db"], at(5 * 3600), merged=True)
    assert not merged.split_apart("@api", "@db", at(5 * 3600))


def test_the_learned_state_stays_bounded():
    a = Affinity(together={pair(f"@s{n}", "@x"): (1.0 + n / 10_000, at(0)) for n in range(MAX_PAIRS)})
    a = a.saw_firing("@x", at(1), GAP).saw_firing("@new", at(2), GAP)
    assert len(a.together) <= MAX_PAIRS and pair("@new", "@x") in a.together


# api and cache are not linked in the catalog (it misses that api uses the cache)
CATALOG = Topology.model_validate(
    {"services": [{"name": "db"}, {"name": "cache"}, {"name": "api", "depends_on": ["db"]}]}
)


def engine(learn: bool) -> Engine:
    policy = Policy(name="graph", topology=True, learn=learn)
    return Engine(Rules(PolicySet(policies=(policy,)), topology=CATALOG))


def storm(eng: Engine, state: State, start: float, n: int) -> list:
    events = []
    for service, offset, name in (("cache", 0, "Evictions"), ("api", 40, "HighLatency")):
        a = alert(starts=start + offset, received=start + offset, alertname=name, service=service, instance=f"i{n}")
        events += eng.apply(state, a, at(start + offset))[1]
    for service, offset, name in (("cache", 600, "Evictions"), ("api", 600, "HighLatency")):
        a = alert(
            "resolved",
            starts=start,
            ends=start + offset,
            received=start + offset,
            alertname=name,
            service=service,
            instance=f"i{n}",
        )
        events += eng.apply(state, a, at(start + offset))[1]
    eng.tick(state, at(start + 700))
    return events


def test_a_policy_that_learns_joins_services_that_keep_firing_together_beyond_the_catalog():
    eng, state = engine(learn=True), State()
    first = [storm(eng, state, n * 3600, n) for n in range(4)]
    opened = [len({e.incident_id for e in events if e.kind.value == "opened"}) for events in first]
    assert opened[:3] == [2, 2, 2] and opened[3] == 1  # the fourth time, api joins the cache's incident
    joined = next(e for e in first[3] if e.kind.value == "alert_added" and e.alert.labels["service"] == "api")
    assert "api and cache fired together 3.0 times (decayed)" in joined.evidence["co_occurrence"]
    eng, state = engine(learn=False), State()
    assert [
        len({e.incident_id for e in storm(eng, state, n * 3600, n) if e.kind.value == "opened"}) for n in range(4)
    ] == [2, 2, 2, 2]


def test_learning_needs_a_topology_policy():
    with pytest.raises(ValidationError, match="learn needs topology"):
        Policy(name="plain", group_by=("alertname",), learn=True)


def test_a_split_teaches_a_learning_policy_to_keep_the_pair_apart_and_a_merge_to_join_it():
    from correlation.projection import project
    from ingest.regroup_api import command_for
    from schemas import CommandAction

    def follow(read: dict, events: list) -> list:
        for e in events:
            read[e.incident_id] = project(read.get(e.incident_id), e) or read[e.incident_id]
        return events

    def day(eng: Engine, state: State, read: dict, start: float, n: int) -> tuple[list, list]:
        db = alert(starts=start, received=start, alertname="Down", service="db", instance=f"db{n}")
        api = alert(starts=start + 30, received=start + 30, alertname="Errors", service="api", instance=f"api{n}")
        return follow(read, eng.apply(state, db, at(start))[1]), follow(read, eng.apply(state, api, at(start + 30))[1])

    for learn, joins in ((True, False), (False, True)):
        eng, state, read = engine(learn=learn), State(), {}
        db, api = day(eng, state, read, 0, 0)
        assert api[0].incident_id == db[0].incident_id  # the catalog joins them
        split = command_for(
            CommandAction.split, read[db[0].incident_id], "bob", "", at(60), alerts=[api[0].alert.fingerprint]
        )
        follow(read, eng.command(state, split)[1])
        db, api = day(eng, state, read, 3600, 1)
        assert (api[0].incident_id == db[0].incident_id) is joins  # a learning policy remembers the person's split
    # a person merging them again outweighs the split
    eng, state, read = engine(learn=True), State(), {}
    db, api = day(eng, state, read, 0, 0)
    follow(
        read,
        eng.command(
            state,
            command_for(
                CommandAction.split, read[db[0].incident_id], "bob", "", at(60), alerts=[api[0].alert.fingerprint]
            ),
        )[1],
    )
    db, api = day(eng, state, read, 3600, 1)
    follow(
        read,
        eng.command(
            state,
            command_for(CommandAction.merge, read[api[0].incident_id], "carol", "", at(3700), into=db[0].incident_id),
        )[1],
    )
    db, api = day(eng, state, read, 7200, 2)
    assert api[0].incident_id == db[0].incident_id
