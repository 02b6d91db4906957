import pytest

from correlation.dedup import DedupOutcome, FingerprintState, dedup
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
    _, out, outcome = run(None, alert("resolved", ends=5), 0)
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


def test_a_suppressed_firing_is_emitted_with_its_reason():
    _, out, outcome = dedup(None, alert(), 0, at(0), RULES, suppressed_by="silence:s1")
    assert outcome is DedupOutcome.suppressed and out[0].suppressed_by == "silence:s1"


def test_dup6_an_alert_released_from_suppression_is_emitted_again():
    entry, _, _ = dedup(None, alert(), 0, at(0), RULES, suppressed_by="silence:s1")
    entry, out, outcome = dedup(entry, alert(), 1, at(60), RULES, suppressed_by="silence:s1")
    assert out == [] and outcome is DedupOutcome.duplicate
    entry, out, outcome = dedup(entry, alert(), 2, at(120), RULES)
    assert outcome is DedupOutcome.released and out[0].suppressed_by is None


def alternate(changes: int, every: int):
    """Fire and resolve in turn, `changes` times, `every` seconds apart; the events dedup emits."""
    entry, events = None, []
    for n in range(changes):
        status, t = ("firing" if n % 2 == 0 else "resolved"), n * every
        entry, out, _ = run(entry, alert(status, starts=t, ends=t if status == "resolved" else None), n, now=t)
        events.extend(out)
    return events


def test_more_state_changes_than_allowed_in_the_window_mark_the_alert_flapping():
    # Default: more than 4 changes within 10 minutes; then flapping until stable for 15 minutes.
    events = alternate(6, every=60)
    assert [e.flapping_until is not None for e in events] == [False, False, False, False, True, True]
    assert events[-1].flapping_until == at(5 * 60 + 15 * 60)


def test_changes_spread_wider_than_the_window_are_not_flapping():
    assert not any(e.flapping_until for e in alternate(8, every=600))


def test_a_record_redelivered_after_later_duplicates_still_reemits_its_event():
    # The crash case: the changelog holds the state after records 0 and 1, but record 0's output was lost.
    entry, first, _ = run(None, alert(), 0)
    entry, _, _ = run(entry, alert(), 1, now=30)
    again, out, outcome = run(entry, alert(), 0, now=60)
    assert outcome is DedupOutcome.redelivered and again == entry and out == first


def test_state_written_by_another_release_still_loads():
    entry, _, _ = run(None, alert(), 0)
    stored = {**entry.model_dump(mode="json"), "last_emitted": [], "a_field_from_the_future": 1}
    del stored["emitted"]
    assert FingerprintState.model_validate(stored).position == 0


def test_the_redelivery_memory_keeps_no_alert_and_a_redelivered_record_re_emits_the_same_event():
    a = alert()
    entry, out, _ = run(None, a, 7)
    stored = entry.model_dump_json()
    assert a.generator_url not in stored or not a.generator_url
    assert '"labels"' not in stored.split('"emitted"', 1)[1]  # the alert's labels are not in the memory
    reread = FingerprintState.model_validate_json(stored)
    again, replayed, outcome = run(reread, a, 7)
    assert outcome is DedupOutcome.redelivered and replayed == out and again is reread


def test_an_entry_whose_memory_holds_whole_events_still_reads():
    """Entries written before the memory left the alert out carry it in each event: it is ignored."""
    a = alert()
    entry, out, _ = run(None, a, 7)
    old = entry.model_dump(mode="json")
    old["emitted"] = [[7, old["emitted"][0][1], [out[0].model_dump(mode="json", by_alias=True)]]]
    reread = FingerprintState.model_validate(old)
    assert run(reread, a, 7)[1] == out
