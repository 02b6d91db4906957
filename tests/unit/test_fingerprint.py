import hashlib

from hypothesis import given
from hypothesis import strategies as st

from correlation.fingerprint import correlation_key, fingerprint, group_labels

label_sets = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), min_size=1, max_size=6)


@given(label_sets)
def test_fingerprint_does_not_depend_on_label_order(labels):
    assert fingerprint(labels) == fingerprint(dict(reversed(list(labels.items()))))


def test_length_prefixing_keeps_shifted_boundaries_apart():
    assert fingerprint({"ab": "c"}) != fingerprint({"a": "bc"})
    assert fingerprint({"a": "b", "c": "d"}) != fingerprint({"a": "bc", "": "d"})


def test_fingerprint_follows_the_documented_encoding():
    # A changed fingerprint would split every open incident in two on upgrade, so pin the encoding:
    # sorted names, each name and value as a 4-byte big-endian length then UTF-8 bytes, SHA-256, 16 hex digits.
    spec = b"\x00\x00\x00\x09alertname\x00\x00\x00\x0bHighLatency\x00\x00\x00\x07service\x00\x00\x00\x08checkout"
    assert fingerprint({"service": "checkout", "alertname": "HighLatency"}) == hashlib.sha256(spec).hexdigest()[:16]


def test_missing_group_labels_group_as_empty():
    assert group_labels({"alertname": "X"}, ["alertname", "service"]) == {"alertname": "X", "service": ""}


def test_correlation_key_escapes_values_so_keys_cannot_collide():
    one = correlation_key({"a": 'x", b="y'})
    two = correlation_key({"a": "x", "b": "y"})
    assert one != two


def test_ignored_labels_do_not_change_the_fingerprint():
    one = {"alertname": "CrashLoop", "deployment": "api", "pod": "api-7d9f-abc"}
    two = {**one, "pod": "api-7d9f-xyz"}
    assert fingerprint(one) != fingerprint(two)
    assert fingerprint(one, frozenset({"pod"})) == fingerprint(two, frozenset({"pod"}))
