"""The read-model stage: `incident-events` -> Redis, then paging and runbooks react.

A record holds one event (the previous version's records) or many (`IncidentEventBatch`); the stage takes the
records that arrived together (stream/barrier.py). Their events are folded into Redis in one transaction (`IncidentStore.fold_many`); then, for each event the read model took, the
service-level histograms are observed, and the pager and the runbook executor react, in order. Both reactions
are idempotent per event, so a redelivered record repeats nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.metrics import ALERT_TO_INCIDENT, READ_MODEL_WRITES, TIME_TO_ACKNOWLEDGE, TIME_TO_RESOLVE
from adapters.readmodel import ApplyResult, IncidentStore
from schemas import Incident, IncidentEvent, IncidentEventKind
from schemas.batch import incident_events
from stream.barrier import Barrier, with_redis_retries

React = Callable[[IncidentEvent, Incident], Awaitable[None]]


def observe_lifecycle(event: IncidentEvent, incident: Incident) -> None:
    """Service levels, once per event (only when the read model took it): alert to incident, MTTA, MTTR."""
    if event.kind is IncidentEventKind.opened and event.alert is not None:
        ALERT_TO_INCIDENT.observe(max(0.0, (event.at - event.alert.starts_at).total_seconds()))
    elif event.kind in (IncidentEventKind.acknowledged, IncidentEventKind.resolved):
        histogram = TIME_TO_ACKNOWLEDGE if event.kind is IncidentEventKind.acknowledged else TIME_TO_RESOLVE
        histogram.observe(max(0.0, (event.at - incident.opened_at).total_seconds()))


class ProjectStage:
    def __init__(self, store: IncidentStore, react: React | None, barrier: Barrier) -> None:
        self.store = store
        self.react = react  # paging and runbooks, when configured
        self.barrier = barrier

    async def fold(self, records: list[tuple[Any, int, IncidentEvent]]) -> list[tuple[ApplyResult, Incident | None]]:
        """All events in one transaction; if that fails for anything but Redis being away (a fault of one
        event), each event alone, and the one that fails goes to `dead-letter` by itself."""
        events = [event for _, _, event in records]
        try:
            return await with_redis_retries(lambda: self.store.fold_many(events))
        except Exception:
            if len(events) == 1:
                raise  # the barrier dead-letters the record
        results: list[tuple[ApplyResult, Incident | None]] = []
        for record, index, one in records:
            try:
                results += await with_redis_retries(lambda: self.store.fold_many([one]))
            except Exception as exc:  # noqa: BLE001
                await self.barrier.item_failed("project", record, index, one.model_dump_json().encode(), exc)
                results.append((ApplyResult.already_applied, None))
        return results

    async def handle(self, records: list[Any]) -> None:
        """The records Faust handed over together: their events folded into Redis at once, in order."""
        items = [
            (record, index, event)
            for record in records
            if (events := await self.barrier.decode("project", record, incident_events)) is not None
            for index, event in enumerate(events)
        ]
        if not items:
            return
        results = await self.fold(items)
        counts: Counter[str] = Counter(result.value for result, _ in results)
        for result_name, count in counts.items():
            READ_MODEL_WRITES.labels(result_name).inc(count)
        for (_, _, incident_event), (result, incident) in zip(items, results):
            if incident is None:
                continue
            if result is ApplyResult.applied:
                observe_lifecycle(incident_event, incident)
            if self.react is not None:
                # After the read model, so runs and pages see the incident.
                await with_redis_retries(lambda: self.react(incident_event, incident))  # type: ignore[misc]
