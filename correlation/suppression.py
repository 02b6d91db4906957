"""Silences and inhibition, decided from labels and the alerts known to fire. Pure: callers bring the data.

Inhibition follows Alertmanager: while an alert matching a rule's `source_matchers` fires, alerts matching
its `target_matchers` with equal values of the `equal` labels are inhibited. An alert that matches both
sides of one rule does not inhibit itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache

from correlation.matchers import Matcher
from correlation.policy import InhibitRule
from schemas import Silence


@lru_cache(maxsize=4096)
def _matcher(text: str) -> Matcher:
    return Matcher.parse(text)



def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: datetime) -> str | None:
    """`silence:<id>` of the first active silence that matches, else None."""
    for silence in silences:
        if silence.starts_at <= now < silence.ends_at and all(_matcher(m).matches(labels) for m in silence.matchers):
            return f"silence:{silence.id}"
    return None


def inhibited_by(
    labels: Mapping[str, str], fingerprint: str, rules: Iterable[InhibitRule], sources: Mapping[str, set[str]]
) -> str | None:
    """`inhibit:<rule>` of the first rule with a firing source (other than this alert) for it, else None.

    `sources` maps each rule key to the fingerprints of the firing alerts registered there.
    """
    for rule in rules:
        key = rule.target_key(labels)
        if key is not None and sources.get(key, set()) - {fingerprint}:
            return f"inhibit:{rule.name}"
    return None


def source_keys(labels: Mapping[str, str], rules: Iterable[InhibitRule]) -> list[str]:
    """Every inhibition key this alert is a source for while it fires."""
    return [key for rule in rules if (key := rule.source_key(labels)) is not None]


def active(silences: Iterable[Silence], now: datetime) -> list[Silence]:
    return [s for s in silences if s.ends_at > now]
