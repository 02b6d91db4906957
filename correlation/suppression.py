"""Silences and inhibition, decided from labels and the alerts known to fire. Pure: callers bring the data.

Inhibition follows Alertmanager: while an alert matching a rule's `source_matchers` fires, alerts matching
its `target_matchers` with equal values of the `equal` labels are inhibited. An alert that matches both
sides of one rule does not inhibit itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from correlation.policy import InhibitRule
from schemas import Silence
from schemas.errors import FirebreakError
from schemas.matchers import matches_all, parse_matcher_list


def silenced_by(labels: Mapping[str, str], silences: Iterable[Silence], now: datetime) -> str | None:
    """`silence:<id>` of the first active silence that matches, else None."""
    for silence in silences:
        if silence.starts_at <= now < silence.ends_at and matches_all(parse_matcher_list(silence.matchers), labels):
            return f"silence:{silence.id}"
    return None


class SilenceAlreadyExpired(FirebreakError, ValueError):
    """Expiring a silence that has already ended: Alertmanager's `Silences.expire` refuses it too."""


def expire(silence: Silence, now: datetime) -> Silence:
    """The silence expired at `now`, as Alertmanager's `Silences.expire` (silence/silence.go): an active silence ends
    now; a pending one (not yet started) gets startsAt = endsAt = now, so it leaves the pending list and never starts;
    an expired one raises SilenceAlreadyExpired ("silence <id> already expired"), since nothing is left to end.
    """
    if silence.ends_at <= now:
        raise SilenceAlreadyExpired(f"silence {silence.id} already expired (at {silence.ends_at.isoformat()})")
    if silence.starts_at > now:
        return silence.model_copy(update={"starts_at": now, "ends_at": now})
    return silence.model_copy(update={"ends_at": now})


def inhibited_by(
    labels: Mapping[str, str], fingerprint: str, rules: Iterable[InhibitRule], sources: Mapping[str, set[str]]
) -> str | None:
    """`inhibit:<rule>` of the first rule with a firing source (other than this alert) for it, else None.

    `sources` maps each rule key to the fingerprints of the firing alerts registered there.
    """
    found = inhibitor(labels, fingerprint, rules, sources)
    return f"inhibit:{found[0]}" if found else None


def inhibitor(
    labels: Mapping[str, str], fingerprint: str, rules: Iterable[InhibitRule], sources: Mapping[str, set[str]]
) -> tuple[str, str] | None:
    """(rule name, fingerprint of a firing source alert) of the first rule that inhibits this alert."""
    for rule in rules:
        key = rule.target_key(labels)
        if key is not None and (others := sources.get(key, set()) - {fingerprint}):
            return rule.name, min(others)
    return None


def describe(suppressed_by: str | None, silences: Iterable[Silence], source: str | None = None) -> dict[str, str]:
    """The particulars of a suppression for the decision log: `text` in words, and the ids."""
    if not suppressed_by:
        return {}
    kind, _, name = suppressed_by.partition(":")
    if kind == "silence":
        silence = next((s for s in silences if s.id == name), None)
        if silence is None:
            return {"text": f"silenced by {name}"}
        return {
            "text": f"silenced by {silence.id} ({silence.created_by}: {silence.comment}; until "
            f"{silence.ends_at.isoformat()}; matchers {', '.join(silence.matchers)})",
            "created_by": silence.created_by,
            "ends_at": silence.ends_at.isoformat(),
        }
    text = f"inhibited by rule {name}" + (f" while alert {source} fires" if source else "")
    return {"text": text, **({"source": source} if source else {})}


def source_keys(labels: Mapping[str, str], rules: Iterable[InhibitRule]) -> list[str]:
    """Every inhibition key this alert is a source for while it fires."""
    return [key for rule in rules if (key := rule.source_key(labels)) is not None]


def active(silences: Iterable[Silence], now: datetime) -> list[Silence]:
    return [s for s in silences if s.ends_at > now]
