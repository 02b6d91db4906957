"""Everything the pure engine is configured with, in one immutable bundle passed to every stage."""

from __future__ import annotations

from dataclasses import dataclass, field

from correlation.policy import PolicySet, default_policies
from correlation.topology import Topology


@dataclass(frozen=True)
class Rules:
    """The correlation file (policies, severities, flapping, problems) and the service catalog."""

    policies: PolicySet
    topology: Topology = field(default_factory=Topology)
    service_label: str = "service"


def default_rules(group_by: tuple[str, ...] = ("alertname", "service")) -> Rules:
    return Rules(policies=default_policies(group_by))
