import json

import pytest
from pydantic import ValidationError

from schemas import LIMITS, AlertIn, AlertmanagerWebhook


def errors_of(body: dict) -> list[dict]:
    with pytest.raises(ValidationError) as info:
        AlertIn.model_validate_json(json.dumps(body))
    return info.value.errors()


def fields(errors: list[dict]) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in errors}


def test_minimal_alert_defaults_to_firing_with_no_times():
    alert = AlertIn.model_validate_json('{"labels": {"alertname": "Down"}}')
    assert alert.status == "firing"
    assert alert.starts_at is None and alert.ends_at is None


def test_unknown_status_names_the_status_field():
    assert fields(errors_of({"status": "exploded", "labels": {"a": "b"}})) == {"status"}


def test_naive_datetime_is_rejected_naming_the_field():
    errs = errors_of({"labels": {"a": "b"}, "startsAt": "2026-03-01T09:00:00"})
    assert fields(errs) == {"startsAt"}
    assert "timezone" in errs[0]["msg"]


def test_empty_label_set_is_rejected():
    errs = errors_of({"labels": {}})
    assert fields(errs) == {"labels"} and "at least one label" in errs[0]["msg"]


@pytest.mark.parametrize("name", ["", "  ", "zero\u200bwidth", "new\nline"])
def test_empty_blank_and_invisible_label_names_are_rejected(name):
    assert fields(errors_of({"labels": {name: "x"}})) == {"labels"}


def test_the_fast_invisible_check_agrees_with_the_unicode_categories_for_every_character():
    # The label-name check answers printable names without a per-character look-up; it must refuse exactly
    # what the category rule (Cc, Cf) refuses, for every code point and in the middle of a name.
    import sys

    from schemas.alert import _has_invisible, _is_invisible

    differ = [hex(c) for c in range(sys.maxunicode + 1) if _has_invisible(chr(c)) != _is_invisible(chr(c))]
    assert differ == []
    assert _has_invisible("a\u00adb") and _has_invisible("x\ufeff") and _has_invisible("bidi\u202e")
    assert not _has_invisible("r\u00e9gion \u65e5\u672c \u2028") and not _has_invisible("")  # non-printable but visible


def test_oversized_label_set_is_rejected_with_the_limit_in_the_message():
    labels = {f"l{i}": "v" for i in range(LIMITS.max_labels + 1)}
    errs = errors_of({"labels": labels})
    assert fields(errs) == {"labels"} and str(LIMITS.max_labels) in errs[0]["msg"]


def test_oversized_label_value_is_rejected():
    errs = errors_of({"labels": {"a": "x" * (LIMITS.max_label_value_chars + 1)}})
    assert fields(errs) == {"labels"}


@pytest.mark.parametrize("value", [1, ["x"], None, {"k": "v"}])
def test_label_values_must_be_strings(value):
    assert fields(errors_of({"labels": {"a": value}})) == {"labels.a"}


def test_label_names_are_nfc_normalised():
    decomposed = "cafe\u0301"  # e + combining acute
    alert = AlertIn.model_validate_json(json.dumps({"labels": {decomposed: "x"}}))
    assert list(alert.labels) == ["caf\u00e9"]


def test_names_equal_after_nfc_are_a_conflict():
    errs = errors_of({"labels": {"cafe\u0301": "x", "caf\u00e9": "y"}})
    assert "twice" in errs[0]["msg"]


def test_ends_before_starts_is_rejected():
    errs = errors_of({"labels": {"a": "b"}, "startsAt": "2026-03-01T09:00:00Z", "endsAt": "2026-03-01T08:00:00Z"})
    assert "endsAt is before startsAt" in errs[0]["msg"]


def test_go_zero_time_reads_as_unset():
    alert = AlertIn.model_validate_json(
        '{"labels": {"a": "b"}, "startsAt": "2026-03-01T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}'
    )
    assert alert.ends_at is None


def test_unknown_fields_are_rejected_in_the_generic_format():
    assert fields(errors_of({"labels": {"a": "b"}, "severity": "high"})) == {"severity"}


def test_alertmanager_payload_version_4_parses_and_ignores_unknown_top_level_fields():
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "firebreak",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "futureField": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "X"},
                "annotations": {},
                "startsAt": "2026-03-01T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom",
                "fingerprint": "abc",
            }
        ],
    }
    hook = AlertmanagerWebhook.model_validate_json(json.dumps(payload))
    assert hook.alerts[0].labels == {"alertname": "X"} and hook.alerts[0].ends_at is None


def test_alertmanager_payload_of_another_version_is_rejected():
    with pytest.raises(ValidationError) as info:
        AlertmanagerWebhook.model_validate_json('{"version": "3", "status": "firing", "alerts": []}')
    assert {e["loc"][0] for e in info.value.errors()} == {"version"}
