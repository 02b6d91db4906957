"""The service catalog (`services.yaml`) and what the engine asks of it: what each service depends on and how
many hops away (`hops`), and which alerting service is the most upstream (the probable root)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.matchers import repeated


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    team: str = ""
    tier: str = ""
    depends_on: tuple[str, ...] = ()


class Topology(BaseModel):
    """The catalog, validated: unique names, dependencies that exist."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    services: tuple[Service, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        dupes = repeated([s.name for s in self.services])
        if dupes:
            raise ValueError(f"service names must be unique; {', '.join(dupes)} appear more than once")
        known = {s.name for s in self.services}
        for service in self.services:
            missing = [d for d in service.depends_on if d not in known]
            if missing:
                raise ValueError(
                    f"{service.name} depends on {', '.join(missing)}, which the catalog does not list; add them"
                )
        return self

    @cached_property
    def upstream(self) -> dict[str, frozenset[str]]:
        """Every service each service depends on, directly or not."""
        direct = {s.name: set(s.depends_on) for s in self.services}
        closure: dict[str, frozenset[str]] = {}

        def visit(name: str, seen: frozenset[str]) -> frozenset[str]:
            if name in closure:
                return closure[name]
            found: set[str] = set()
            for dep in direct.get(name, ()):
                if dep not in seen:  # a cycle in the catalog ends the walk instead of looping
                    found |= {dep} | visit(dep, seen | {dep})
            closure[name] = frozenset(found)
            return closure[name]

        for name in direct:
            visit(name, frozenset({name}))
        return closure

    @cached_property
    def _hops(self) -> dict[str, dict[str, int]]:
        return {}

    def hops(self, service: str) -> dict[str, int]:
        """Every service `service` depends on, directly or not, with the fewest dependency hops to it (1: direct).
        Computed once per service (breadth first over `depends_on`)."""
        found = self._hops.get(service)
        if found is None:
            direct = self._direct
            found, frontier, distance = {}, [service], 0
            while frontier:
                distance += 1
                frontier = [
                    dep for name in frontier for dep in direct.get(name, ()) if dep not in found and dep != service
                ]
                for dep in frontier:
                    found.setdefault(dep, distance)
            self._hops[service] = found
        return found

    @cached_property
    def _direct(self) -> dict[str, tuple[str, ...]]:
        return {s.name: s.depends_on for s in self.services}

    def knows(self, service: str) -> bool:
        return service in self.upstream

    def root_of(self, services: Iterable[str]) -> str | None:
        """The most upstream of these services: depended on by the most of the others; ties by name."""
        members = sorted(set(services))
        if not members:
            return None

        def below(candidate: str) -> int:
            return sum(1 for other in members if candidate in self.upstream.get(other, frozenset()))

        roots = [m for m in members if not any(other in self.upstream.get(m, frozenset()) for other in members)]
        return max(roots or members, key=lambda m: (below(m), [-ord(c) for c in m]))

    def with_dependencies(self, services: Iterable[str]) -> set[str]:
        """These services and everything they depend on."""
        out: set[str] = set()
        for name in services:
            out |= {name} | self.upstream.get(name, frozenset())
        return out
