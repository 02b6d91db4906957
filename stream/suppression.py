"""Silences and inhibition as the dedup stage and the pager see them: this worker's copy of the silences
(refreshed from Redis every few seconds) and the firing inhibition sources in Redis, read once per record."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

from redis.exceptions import RedisError

from adapters.inhibition_store import InhibitionStore
from adapters.silence_store import SilenceStore
from correlation.policy import InhibitRule
from correlation.suppression import inhibitor, silenced_by, source_keys
from schemas import Silence

log = logging.getLogger("firebreak.worker")


class Suppression:
    """Who suppresses an alert: `silence:<id>` or `inhibit:<rule>` (with the inhibiting fingerprint)."""

    def __init__(self, silences: SilenceStore, inhibition: InhibitionStore, rules: tuple[InhibitRule, ...]) -> None:
        self.silence_store = silences
        self.inhibition = inhibition
        self.rules = rules
        self.silences: list[Silence] = []  # this worker's copy, refreshed every 2 s

    async def refresh(self, now: datetime) -> None:
        try:
            self.silences[:] = await self.silence_store.current(now)
        except RedisError as exc:
            # Fail open for paging: keep the last known silences rather than silence everything or nothing.
            log.warning("could not refresh silences from Redis (%s); keeping %d known", exc, len(self.silences))

    async def sources(self, labelsets: Iterable[Mapping[str, str]]) -> dict[str, set[str]]:
        """The firing sources of every inhibition key these alerts could be targets of: one Redis round trip.
        Redis unreachable: none (the alerts are treated as not inhibited, fail open for paging)."""
        if not self.rules:
            return {}
        targets = {k for labels in labelsets for r in self.rules if (k := r.target_key(labels)) is not None}
        try:
            return await self.inhibition.sources(targets)
        except RedisError as exc:
            log.warning("inhibition lookup failed (%s): treating the alerts as not inhibited", exc)
            return {}

    def of(
        self, labels: Mapping[str, str], fingerprint: str, now: datetime, sources: Mapping[str, set[str]]
    ) -> tuple[str | None, str | None]:
        """(`silence:<id>` or `inhibit:<rule>`, the inhibiting alert's fingerprint) for one alert."""
        suppressed = silenced_by(labels, self.silences, now)
        if suppressed is None and self.rules:
            found = inhibitor(labels, fingerprint, self.rules, sources)
            if found is not None:
                return f"inhibit:{found[0]}", found[1]
        return suppressed, None

    async def one(self, labels: Mapping[str, str], fingerprint: str, now: datetime) -> tuple[str | None, str | None]:
        """`of` for a single alert, reading its sources."""
        return self.of(labels, fingerprint, now, await self.sources([labels]))

    def note_source(
        self,
        sources: dict[str, set[str]],
        labels: Mapping[str, str],
        fingerprint: str,
        firing: bool,
        changes: dict[tuple[str, str], bool],
    ) -> None:
        """An alert of this record started or stopped firing: later alerts of the record see it in `sources`
        at once, and `changes` ((key, fingerprint) -> firing) is written by `save` after the record."""
        for key in source_keys(labels, self.rules):
            members = sources.setdefault(key, set())
            (members.add if firing else members.discard)(fingerprint)
            changes[(key, fingerprint)] = firing

    async def save(self, changes: dict[tuple[str, str], bool]) -> None:
        """Write a record's source changes to Redis in one round trip; a failure is logged (the sources are
        refreshed as the alerts fire or resolve again)."""
        if not changes:
            return
        try:
            await self.inhibition.update_many(changes)
        except RedisError as exc:
            log.warning("could not record %d inhibition source changes (%s)", len(changes), exc)
