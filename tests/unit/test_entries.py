"""The stage tables' codec: entries stored as the model's JSON, parsed entries reused only while the table
still holds the bytes they came from, and the due index read from the stored bytes' tail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from adapters.entries import DueIndex, Entries
from adapters.metrics import STATE_RESETS
from correlation.grouping import GroupState

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def group(
    key: str, partition: int = 0, due_at: datetime | None = None, labels: dict[str, str] | None = None
) -> GroupState:
    return GroupState(
        correlation_key=key, group_labels=labels or {"service": key}, position=3, partition=partition, due_at=due_at
    )


def test_an_entry_written_is_stored_as_its_json_and_read_back_without_parsing():
    table: dict[str, bytes] = {}
    entries = Entries(table, GroupState, "groups")
    entry = group("a", 2)
    entries.set("a", entry)
    assert json.loads(table["a"]) == entry.model_dump(mode="json")
    assert entries.get("a") is entry  # the same object: nothing parsed


def test_bytes_replaced_behind_its_back_are_parsed_again():
    """A changelog recovery puts new bytes in the table: the kept model must not be served for them."""
    table: dict[str, bytes] = {}
    entries = Entries(table, GroupState, "groups")
    entries.set("a", group("a", 1))
    table["a"] = group("a", 3).model_dump_json().encode()
    assert entries.get("a").partition == 3


def test_entries_of_the_old_codec_still_read():
    """Before this codec the changelog held Faust's JSON of `model_dump(mode="json")`; the raw codec reads those
    records as bytes, and they parse the same."""
    entry = group("a", 1)
    entries = Entries({"on-changelog": json.dumps(entry.model_dump(mode="json")).encode()}, GroupState, "groups")
    assert entries.get("on-changelog") == entry


def test_an_unreadable_entry_reads_as_none_and_is_counted():
    before = STATE_RESETS.labels("groups")._value.get()
    entries = Entries({"bad": b'{"position": "not a number"}'}, GroupState, "groups")
    assert entries.get("bad") is None
    assert STATE_RESETS.labels("groups")._value.get() == before + 1


def test_parsed_entries_kept_are_bounded():
    table: dict[str, bytes] = {}
    entries = Entries(table, GroupState, "groups", keep=3)
    for n in range(10):
        entries.set(str(n), group(str(n)))
    assert len(entries._parsed) == 3
    assert entries.get("0") == group("0")  # parsed again from the table


def test_the_due_index_finds_due_entries_and_their_partitions():
    table: dict[str, bytes] = {}
    entries = Entries(table, GroupState, "groups")
    entries.set("past", group("past", 1, NOW - timedelta(seconds=1)))
    entries.set("now", group("now", 2, NOW))
    entries.set("later", group("later", 3, NOW + timedelta(seconds=1)))
    entries.set("never", group("never", 0, None))
    index = DueIndex(entries)
    assert sorted(index.due(NOW)) == [("now", 2), ("past", 1)]
    # A changed entry is read again; a removed one is forgotten.
    entries.set("later", group("later", 3, NOW - timedelta(minutes=1)))
    del table["past"]
    assert sorted(index.due(NOW)) == [("later", 3), ("now", 2)]
    assert set(index._known) == {"now", "later", "never"}


def test_the_due_index_is_not_fooled_by_labels_named_like_its_fields():
    """A label named `partition` or `due_at` appears earlier in the bytes; the tail read must still be right,
    and an old field order falls back to a whole parse."""
    table: dict[str, bytes] = {}
    entries = Entries(table, GroupState, "groups")
    tricky = group("t", 2, NOW, labels={"partition": "9", "due_at": "2000-01-01T00:00:00Z"})
    entries.set("t", tricky)
    old_order = tricky.model_dump(mode="json")
    table["old"] = json.dumps(
        {
            "partition": 1,
            "due_at": NOW.isoformat(),
            **{k: v for k, v in old_order.items() if k not in ("partition", "due_at")},
        }
    ).encode()
    assert sorted(DueIndex(entries).due(NOW)) == [("old", 1), ("t", 2)]
