"""Fingerprints and correlation keys, derived from label sets only."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping


def fingerprint(labels: Mapping[str, str], ignore: frozenset[str] = frozenset()) -> str:
    """A stable 16-hex-digit id for a label set, independent of label order.

    Each name and value is length-prefixed before hashing, so {"ab": "c"} and {"a": "bc"} differ.
    Labels named in `ignore` (say `pod`, `replica`) do not count, so a restarted pod is the same alert.
    Labels are expected NFC-normalised already (the schemas do that at the edge).
    """
    digest = hashlib.sha256()
    for name in sorted(n for n in labels if n not in ignore):
        for part in (name, labels[name]):
            raw = part.encode("utf-8")
            digest.update(len(raw).to_bytes(4, "big"))
            digest.update(raw)
    return digest.hexdigest()[:16]


def group_labels(labels: Mapping[str, str], group_by: Iterable[str]) -> dict[str, str]:
    """The values of the `group_by` labels; a missing label groups as the empty string, as in Alertmanager."""
    return {name: labels.get(name, "") for name in group_by}


def correlation_key(grouped: Mapping[str, str]) -> str:
    """A readable, unambiguous key for a group: `{alertname="X", service="Y"}` with values JSON-escaped."""
    inner = ", ".join(f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in grouped.items())
    return "{" + inner + "}"
