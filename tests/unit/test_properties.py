"""Invariants of the whole engine over random streams (hypothesis)."""

from collections import Counter
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from correlation.dedup import dedup
from correlation.engine import Engine, State
from correlation.grouping import Phase, group
from correlation.policy import Policy, PolicySet
from correlation.redelivery import RETAIN_FOR
from correlation.rules import Rules
from correlation.topology import Topology
from schemas import AlertStatus, Silence
from tests.factories import alert, at

TOPOLOGY = Topology.model_validate(
    {
        "services": [
            {"name": "db"},
            {"name": "api", "depends_on": ["db"]},
            {"name": "web", "depends_on": ["api"]},
            {"name": "batch"},
        ]
    }
)
RULES = Rules(
    PolicySet(
        policies=(
            Policy(
                name="graph",
                match=('service=~"db|api|web"',),
                topology=True,
                group_window=timedelta(minutes=5),
                max_alerts=4,
                reopen_window=timedelta(minutes=2),
            ),
            Policy(
                name="rest",
                group_by=("alertname", "service"),
                group_wait=timedelta(seconds=30),
                resolve_timeout=timedelta(seconds=45),
            ),
        )
    ),
    topology=TOPOLOGY,
)
SILENCE = Silence(id="s", matchers=['instance="i3"'], starts_at=at(0), ends_at=at(100_000), created_by="t", comment="t")

step = st.tuples(
    st.sampled_from(["firing", "firing", "resolved"]),
    st.sampled_from(["db", "api", "web", "batch"]),
    st.sampled_from(["i1", "i2", "i3"]),
    st.integers(min_value=1, max_value=120),  # seconds since the previous step
)
streams = st.lists(step, max_size=50)


def alerts_of(stream):
    now, out = 0, []
    for status, service, instance, gap in stream:
        now += gap
        out.append(
            (
                now,
                alert(
                    status,
                    starts=now,
                    ends=now if status == "resolved" else None,
                    received=now,
                    alertname="Err",
                    service=service,
                    instance=instance,
                ),
            )
        )
    return out


def run(items, silences=()):
    eng, state, events = Engine(RULES), State(silences=list(silences)), []
    for now, a in items:
        events += eng.tick(state, at(now))[1]
        events += eng.apply(state, a, at(now))[1]
    return state, events


def opened(events):
    return sum(e.kind.value == "opened" for e in events)


@given(streams, st.randoms())
@settings(max_examples=150, deadline=None)
def test_reordering_duplicates_never_changes_the_incident_count(stream, rnd):
    items = alerts_of(stream)
    # Insert repeats of firing alerts (same labels, same startsAt) at random later points of the stream while
    # the alert still fires there: a copy received after its resolve is not a repeat (DUP-11 fires it again once
    # copies in flight would have arrived).
    noisy = list(items)
    for index, (now, a) in enumerate(items):
        if a.status is AlertStatus.firing:
            resolve = next(
                (
                    t
                    for t, b in items[index + 1 :]
                    if b.fingerprint == a.fingerprint and b.status is AlertStatus.resolved
                ),
                None,
            )
            later = [t for t, _ in items if t >= now and (resolve is None or t < resolve)]
            noisy.append((rnd.choice(later), a))
    noisy.sort(key=lambda item: item[0])
    assert opened(run(items)[1]) == opened(run(noisy)[1])


@given(streams, st.integers(min_value=0, max_value=49))
@settings(max_examples=150, deadline=None)
def test_processing_any_record_twice_yields_the_same_state(stream, pick):
    items = alerts_of(stream)
    if not items:
        return
    pick %= len(items)
    fingerprint = items[pick][1].fingerprint
    fp_entry, out, last = None, [], 0
    for position, (now, a) in enumerate(items):  # the whole stream: later records of the key apply too
        if a.fingerprint == fingerprint:
            fp_entry, emitted, _ = dedup(fp_entry, a, position, at(now), RULES)
            last = now
            if position == pick:
                out = emitted
    again, out_again, _ = dedup(fp_entry, items[pick][1], pick, at(items[-1][0] + 5), RULES)
    assert again == fp_entry
    # Its output comes back as long as the entry still remembers it (correlation/redelivery.py's bound).
    if timedelta(seconds=last - items[pick][0]) <= RETAIN_FOR:
        assert out_again == out
    for event in out:
        entry, first = group(None, event, 0, at(0), RULES)
        replayed, second = group(entry, event, 0, at(9), RULES)
        assert replayed == entry and second == first


@given(streams)
@settings(max_examples=150, deadline=None)
def test_no_alert_is_ever_in_two_open_incidents(stream):
    eng, state = Engine(RULES), State()
    for now, a in alerts_of(stream):
        eng.tick(state, at(now))
        eng.apply(state, a, at(now))
        holders = Counter()
        for entry in state.groups.values():
            for inc in entry.incidents.values():
                if inc.phase is not Phase.resolved:
                    for fp in {*inc.alerts, *(p.fingerprint for p in inc.pending)}:
                        holders[fp] += 1
        assert all(count == 1 for count in holders.values())


@given(streams)
@settings(max_examples=150, deadline=None)
def test_every_firing_alert_is_in_one_incident_or_recorded_as_suppressed(stream):
    items = alerts_of(stream)
    state, _ = run(items, silences=[SILENCE])
    last = items[-1][0] if items else 0
    Engine(RULES).tick(state, at(last + 3600))  # let group_wait run out
    members = {}
    for entry in state.groups.values():
        for inc in entry.incidents.values():
            for fp, status in inc.alerts.items():
                if status is AlertStatus.firing and inc.phase is not Phase.resolved:
                    members[fp] = inc.id
    for fp, entry in state.fingerprints.items():
        if entry.status is AlertStatus.firing:
            assert (fp in members) != bool(entry.suppressed_by), (fp, entry.suppressed_by)
