"""Learned evidence: which alert signatures fire together, and which pairs people split apart. Pure.

A policy with `learn: true` keeps one `Affinity` per correlation key, inside the grouping stage's entry (so in
its changelog-backed table, and in replay and `check` alike). A signature is what recurs across failures,
unlike a fingerprint: the alert's service (`signature`).

- Fired together: when an alert starts firing, each other signature whose alert started firing within the
  policy's session gap before it (at most RECENT_KEPT of them) counts one co-occurrence with it.
- Merged by a person (GRP-30): every pair across the two incidents counts PERSON_WEIGHT co-occurrences.
- Split by a person (GRP-31): every pair across the moved and the remaining alerts counts PERSON_WEIGHT
  times apart.

Counts decay by half every HALF_LIFE (an old habit of the system fades). A pair links two alerts
(`learned_link`) when it fired together at least MIN_TOGETHER times (decayed) and in at least MIN_SHARE of the
rarer signature's firings, and was not split apart more often than merged or fired together. A pair split apart
more often never links, not even along the catalog (`split_apart`). The state is bounded: MAX_PAIRS pairs and
MAX_SIGNATURES signatures, the weakest forgotten first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

HALF_LIFE = timedelta(days=7)
MIN_TOGETHER = 2.5  # three firings together within a few days (counts decay: three within a week make 2.5 to 3)
MIN_SHARE = 0.5
PERSON_WEIGHT = 3.0  # a person's merge or split counts as much as this many firings together
RECENT_KEPT = 64
MAX_PAIRS = 4000
MAX_SIGNATURES = 1000

Count = tuple[float, AwareDatetime]  # (decayed count, as of when)


def signature(labels: dict[str, str], service_label: str) -> str:
    """What learning recognises an alert by across failures: `@service`. Its service, not its alertname: the
    symptom a failure shows on a service (errors, latency) varies from one failure to the next, and learning by
    alertname and service learned too slowly to help on the benchmark worlds (bench/worlds.py)."""
    return f"@{labels.get(service_label, '')}"


def pair(a: str, b: str) -> str:
    return f"{a}\x1f{b}" if a < b else f"{b}\x1f{a}"


def decayed(count: Count | None, now: datetime) -> float:
    """A count as of `now`, halved every HALF_LIFE since it was last updated."""
    if count is None:
        return 0.0
    value, at = count
    age = (now - at) / HALF_LIFE
    return value * math.pow(0.5, age) if age > 0 else value


class Affinity(BaseModel):
    """One correlation key's learned evidence (stored state: tolerant of other releases)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    fired: dict[str, Count] = {}  # signature -> its firings
    together: dict[str, Count] = {}  # pair -> firings together (and merges)
    apart: dict[str, Count] = {}  # pair -> splits
    recent: list[tuple[AwareDatetime, str]] = []  # the latest firings, oldest first, for the next co-occurrences

    def saw_firing(self, sig: str, now: datetime, gap: timedelta) -> Affinity:
        """An alert of `sig` started firing at `now`: count it, and a co-occurrence with each signature that
        started firing within `gap` before it."""
        recent = [(at, s) for at, s in self.recent if now - at <= gap]
        together = dict(self.together)
        for other in {s for _, s in recent if s != sig}:
            key = pair(sig, other)
            together[key] = (decayed(together.get(key), now) + 1, now)
        recent = [*[(at, s) for at, s in recent if s != sig][-(RECENT_KEPT - 1) :], (now, sig)]
        fired = {**self.fired, sig: (decayed(self.fired.get(sig), now) + 1, now)}
        return Affinity(
            fired=_bounded(fired, MAX_SIGNATURES, now),
            together=_bounded(together, MAX_PAIRS, now),
            apart=self.apart,
            recent=recent,
        )

    def people_said(self, left: Iterable[str], right: Iterable[str], now: datetime, *, merged: bool) -> Affinity:
        """A person merged (`merged`) or split apart two sets of signatures: every pair across them counts."""
        pairs = {pair(a, b) for a in set(left) for b in set(right) if a != b}
        book = dict(self.together if merged else self.apart)
        for key in pairs:
            book[key] = (decayed(book.get(key), now) + PERSON_WEIGHT, now)
        book = _bounded(book, MAX_PAIRS, now)
        return self.model_copy(update={"together": book} if merged else {"apart": book})

    def split_apart(self, a: str, b: str, now: datetime) -> bool:
        """Whether people split this pair apart more often than it fired (or was merged) together."""
        key = pair(a, b)
        apart = decayed(self.apart.get(key), now)
        return apart > 0 and apart >= decayed(self.together.get(key), now)

    def learned_link(self, a: str, b: str, now: datetime) -> dict[str, str] | None:
        """The evidence that `a` and `b` belong together, or None: see the module's docstring for the rule."""
        if a == b or self.split_apart(a, b, now):
            return None
        together = decayed(self.together.get(pair(a, b)), now)
        if together < MIN_TOGETHER:
            return None
        rarer = min(decayed(self.fired.get(a), now), decayed(self.fired.get(b), now))
        share = together / rarer if rarer > 0 else 1.0
        if share < MIN_SHARE:
            return None
        return {
            "co_occurrence": f"{a.removeprefix('@')} and {b.removeprefix('@')} fired together {together:.1f} times "
            f"(decayed), in {min(share, 1.0):.0%} of the rarer one's firings"
        }


def _bounded(book: dict[str, Count], limit: int, now: datetime) -> dict[str, Count]:
    """At most `limit` entries: past it, the weakest (decayed) tenth is forgotten, so pruning is rare; what was
    counted just now is kept (it would always be the weakest)."""
    if len(book) <= limit:
        return book
    keep = sorted(book, key=lambda k: (book[k][1] >= now, decayed(book[k], now)), reverse=True)[: limit * 9 // 10]
    return {k: book[k] for k in keep}
