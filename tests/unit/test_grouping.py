from correlation.fingerprint import correlation_key, group_labels
from correlation.grouping import group
from schemas import AlertEvent
from tests.factories import alert, at


def event_for(a, now=0):
    grouped = group_labels(a.labels, ("alertname", "service"))
    return AlertEvent(status=a.status, correlation_key=correlation_key(grouped), group_labels=grouped, alert=a, at=at(now))


def kinds(events):
    return [e.kind.value for e in events]


def test_first_firing_opens_an_incident_and_adds_the_alert():
    entry, out = group(None, event_for(alert(instance="a", alertname="X", service="s")), 0, at(0))
    assert kinds(out) == ["opened", "alert_added"]
    assert [e.seq for e in out] == [1, 2]
    assert out[0].incident_id == out[1].incident_id == entry.incident.id


def test_second_alert_of_the_group_joins_the_open_incident():
    entry, first = group(None, event_for(alert(instance="a", alertname="X", service="s")), 0, at(0))
    entry, out = group(entry, event_for(alert(instance="b", alertname="X", service="s")), 1, at(1))
    assert kinds(out) == ["alert_added"] and out[0].incident_id == first[0].incident_id and out[0].seq == 3


def test_the_same_alert_event_twice_changes_nothing_the_second_time():
    ev = event_for(alert(instance="a", alertname="X", service="s"))
    entry, _ = group(None, ev, 0, at(0))
    again, out = group(entry, ev, 1, at(1))
    assert out == [] and again.incident == entry.incident


def test_incident_resolves_when_its_last_alert_resolves():
    a = alert(instance="a", alertname="X", service="s")
    b = alert(instance="b", alertname="X", service="s")
    entry, _ = group(None, event_for(a), 0, at(0))
    entry, _ = group(entry, event_for(b), 1, at(1))
    entry, out = group(entry, event_for(alert("resolved", ends=5, instance="a", alertname="X", service="s")), 2, at(5))
    assert kinds(out) == ["alert_resolved"] and entry.incident is not None
    entry, out = group(entry, event_for(alert("resolved", ends=6, instance="b", alertname="X", service="s")), 3, at(6))
    assert kinds(out) == ["alert_resolved", "resolved"] and entry.incident is None


def test_firing_after_the_incident_resolved_opens_a_new_incident():
    a = alert(instance="a", alertname="X", service="s")
    entry, first = group(None, event_for(a), 0, at(0))
    entry, _ = group(entry, event_for(alert("resolved", ends=5, instance="a", alertname="X", service="s")), 1, at(5))
    entry, out = group(entry, event_for(alert(starts=10, instance="a", alertname="X", service="s")), 2, at(10))
    assert kinds(out) == ["opened", "alert_added"] and out[0].incident_id != first[0].incident_id


def test_redelivered_alert_event_reemits_the_same_incident_events():
    entry, first = group(None, event_for(alert()), 4, at(0))
    again, out = group(entry, event_for(alert()), 4, at(9))
    assert again == entry and out == first
