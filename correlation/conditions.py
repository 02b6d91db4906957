"""The conditions a runbook's `match` and a notification route share: severity, services, owner team and label
matchers, over the labels of an incident's alerts (docs/guides/runbooks.md, docs/guides/paging.md).

Pure: the incident, the catalog and the service label in, a yes or no out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from correlation.topology import Topology
from schemas import Alert, Incident
from schemas.matchers import matches_all, parse_matcher_list


def label_sets(incident: Incident, extra: Alert | None) -> list[dict[str, str]]:
    """Each alert's labels with the incident's group labels over them; `extra` (an alert not yet in the
    incident) too; the group labels alone for an incident without alerts."""
    sets = [{**a.labels, **incident.group_labels} for a in incident.alerts.values()]
    if extra is not None and extra.fingerprint not in incident.alerts:
        sets.append({**extra.labels, **incident.group_labels})
    return sets or [dict(incident.group_labels)]


def services_of(incident: Incident, service_label: str, extra: Alert | None = None) -> list[str]:
    """The values of `service_label` across the incident's alerts (and `extra`), sorted, each once."""
    return sorted({s for labels in label_sets(incident, extra) if (s := labels.get(service_label))})


def team_of(services: Iterable[str], probable_root: str | None, topology: Topology) -> str | None:
    """The owner team of the probable root, else of the first service the catalog gives a team; None if none."""
    teams = {s.name: s.team for s in topology.services if s.team}
    for name in [probable_root, *services]:
        if name and name in teams:
            return teams[name]
    return None


class Conditions(Protocol):
    """A runbook's `match` or a notification route: each list empty means no condition of that kind."""

    @property
    def matchers(self) -> list[str]: ...

    @property
    def severity(self) -> list[str]: ...

    @property
    def service(self) -> list[str]: ...

    @property
    def team(self) -> list[str]: ...


def conditions_hold(
    spec: Conditions,
    incident: Incident,
    severity: str | None,
    topology: Topology,
    service_label: str,
    extra: Alert | None = None,
) -> bool:
    """Whether every condition given holds for this incident (a runbook's `match`, a notification route)."""
    if spec.severity and severity not in spec.severity:
        return False
    services = services_of(incident, service_label, extra)
    if spec.service and not set(spec.service) & set(services):
        return False
    if spec.team and team_of(services, incident.probable_root, topology) not in spec.team:
        return False
    matchers = parse_matcher_list(spec.matchers)
    return not matchers or any(matches_all(matchers, labels) for labels in label_sets(incident, extra))
