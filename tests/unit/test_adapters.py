import json
from datetime import UTC

import pytest

from ingest.adapters import parse_alertmanager, parse_generic
from ingest.errors import IngestError
from tests.factories import at

NOW = at(0)


def generic(body, limit=100):
    return parse_generic(json.dumps(body).encode() if not isinstance(body, bytes) else body, NOW, limit).alerts


def test_one_object_or_a_list_are_both_accepted():
    assert len(generic({"labels": {"a": "b"}})) == 1
    assert len(generic([{"labels": {"a": "b"}}, {"labels": {"a": "c"}}])) == 2


def test_server_derives_the_fingerprint_and_ignores_the_clients():
    [mine] = generic({"labels": {"a": "b"}, "fingerprint": "attacker-chosen"})
    [plain] = generic({"labels": {"a": "b"}})
    assert mine.fingerprint == plain.fingerprint != "attacker-chosen"


def test_missing_starts_at_defaults_to_the_time_received():
    [a] = generic({"labels": {"a": "b"}})
    assert a.starts_at == NOW and a.received_at == NOW and a.source == "generic"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "malformed_json"),
        (b'"a string"', 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        ([], 422, "no_alerts"),
        ([{"labels": {"a": 1}}], 422, "invalid_alert"),
    ],
)
def test_bad_bodies_get_the_documented_error(body, status, reason):
    with pytest.raises(IngestError) as info:
        generic(body)
    assert (info.value.status, info.value.reason) == (status, reason)


def test_field_paths_point_at_the_bad_alert_in_a_batch():
    with pytest.raises(IngestError) as info:
        generic([{"labels": {"a": "b"}}, {"labels": {"a": "b"}, "status": "bogus"}])
    assert [p.field for p in info.value.problems] == ["[1].status"]


def test_too_many_alerts_is_413():
    with pytest.raises(IngestError) as info:
        generic([{"labels": {"a": str(i)}} for i in range(3)], limit=2)
    assert info.value.status == 413


def test_alertmanager_source_names_the_receiver():
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "team-a",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "X"},
                "startsAt": "2026-03-01T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }
    [a] = parse_alertmanager(json.dumps(body).encode(), NOW, 10).alerts
    assert a.source == "alertmanager:team-a" and a.ends_at is None


def test_ingest_leaves_ignored_labels_out_of_the_fingerprint_but_keeps_them():
    body = json.dumps([{"labels": {"a": "b", "pod": "p1"}}, {"labels": {"a": "b", "pod": "p2"}}]).encode()
    one, two = parse_generic(body, NOW, 10, frozenset({"pod"})).alerts
    assert one.fingerprint == two.fingerprint and one.labels["pod"] == "p1"


def test_a_resolve_without_starts_at_takes_its_ends_at_when_that_is_earlier_than_now():
    from datetime import datetime, timedelta

    from ingest.adapters import parse_generic

    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    ended = now - timedelta(seconds=2)  # the sender's clock is a little behind
    body = json.dumps({"labels": {"alertname": "A"}, "status": "resolved", "endsAt": ended.isoformat()}).encode()
    [alert] = parse_generic(body, now, 10).alerts
    assert alert.starts_at == ended == alert.ends_at


def test_a_check_of_the_canonical_record_is_a_422_naming_the_alert_and_field(monkeypatch):
    from datetime import datetime

    import ingest.adapters as adapters
    from ingest.errors import IngestError
    from schemas import Alert

    def refuse(**fields):  # a record-level rule the body schema does not know (as endsAt < startsAt once was)
        return Alert.model_validate({**fields, "ends_at": datetime(2000, 1, 1, tzinfo=UTC), "status": "resolved"})

    monkeypatch.setattr(adapters, "Alert", refuse)
    body = json.dumps([{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}}]).encode()
    try:
        adapters.parse_generic(body, datetime(2026, 3, 1, tzinfo=UTC), 10)
    except IngestError as exc:
        assert exc.status == 422 and [p.field for p in exc.problems] == ["[0].endsAt", "[1].endsAt"]
    else:
        raise AssertionError("expected a 422")
