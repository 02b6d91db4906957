import pytest

from correlation.dedup import DedupOutcome, dedup
from correlation.rules import default_rules
from tests.factories import alert, at

RULES = default_rules()


def run(entry, a, position, now=0):
    return dedup(entry, a, position, at(now), RULES)


def test_first_firing_emits_one_event_with_the_correlation_key():
    entry, out, outcome = run(None, alert(), 0)
    assert outcome is DedupOutcome.fired
    assert [e.status.value for e in out] == ["firing"]
    assert out[0].correlation_key == 'default:{alertname="HighLatency", service="checkout"}'
    assert entry.status.value == "firing"


def test_repeated_firing_counts_a_duplicate_and_emits_nothing():
    entry, _, _ = run(None, alert(), 0)
    entry, out, outcome = run(entry, alert(), 1, now=30)
    entry, out2, _ = run(entry, alert(), 2, now=60)
    assert out == out2 == [] and outcome is DedupOutcome.duplicate
    assert entry.duplicates == 2 and entry.last_seen == at(60)


def test_resolve_of_a_firing_alert_emits_resolved():
    entry, _, _ = run(None, alert(), 0)
    entry, out, outcome = run(entry, alert("resolved", ends=90), 1, now=90)
    assert outcome is DedupOutcome.resolved and [e.status.value for e in out] == ["resolved"]
    assert entry.resolved_at == at(90)


def test_resolve_of_an_unknown_alert_emits_nothing():
    entry, out, outcome = run(None, alert("resolved", ends=5), 0)
    assert out == [] and outcome is DedupOutcome.duplicate_resolve


def test_refiring_after_resolve_emits_firing_again():
    entry, _, _ = run(None, alert(), 0)
    entry, _, _ = run(entry, alert("resolved", ends=60), 1, now=60)
    entry, out, outcome = run(entry, alert(starts=120), 2, now=120)
    assert outcome is DedupOutcome.fired and len(out) == 1


def test_late_copy_of_an_old_firing_after_the_resolve_is_stale():
    entry, _, _ = run(None, alert(), 0)
    entry, _, _ = run(entry, alert("resolved", ends=60), 1, now=60)
    entry, out, outcome = run(entry, alert(starts=0), 2, now=61)
    assert out == [] and outcome is DedupOutcome.stale
    assert entry.status.value == "resolved"


def test_redelivered_record_reemits_what_it_emitted_and_changes_nothing():
    entry, first, _ = run(None, alert(), 7)
    again, out, outcome = run(entry, alert(), 7, now=99)
    assert outcome is DedupOutcome.redelivered
    assert again == entry and out == first


@pytest.mark.parametrize("older", [0, 6])
def test_records_older_than_the_last_applied_are_noops(older):
    entry, _, _ = run(None, alert(), 7)
    again, out, outcome = run(entry, alert("resolved"), older)
    assert again == entry and out == [] and outcome is DedupOutcome.redelivered
