#!/usr/bin/env python3
"""Generate realistic alert storms as JSON lines, with the ground truth of each alert.

The world: services in tiers (infrastructure, platform, edge) with a dependency graph. A root failure
makes its service alert on some instances, then spreads to the services that depend on it, tier by tier,
after a delay; later everything resolves, roughly in reverse. Around that: short transient alerts, a few
flapping ones, and Alertmanager-style repeats of every firing alert at a fixed interval.

Each line is an Alertmanager alert object plus `receivedAt` (when the sender delivered it) and `truth`
(`{"failure": id, "root": service}`), which replay ignores and benchmarks score against.

    python examples/storm.py --out storm.jsonl                  # the default scenario
    python examples/storm.py --failures 200 --hours 48 --out big.jsonl
    python examples/storm.py --catalog-out examples/services.yaml
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ZERO_TIME = "0001-01-01T00:00:00Z"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)

TIERS = {
    "infra": ["postgres", "redis-cache", "kafka", "dns", "object-store"],
    "platform": ["auth", "catalog", "inventory", "payments", "search", "users", "orders", "notifications"],
    "edge": ["web", "mobile-api", "checkout", "cart", "admin", "partner-api", "recommendations"],
}
TEAMS = {"infra": "platform-infra", "platform": "core-services", "edge": "storefront"}
ROOT_ALERTS = {"infra": ["InstanceDown", "DiskAlmostFull", "HighCPU"], "platform": ["HighErrorRate", "PodCrashLooping"],
               "edge": ["HighErrorRate", "HighLatency"]}
SYMPTOM_ALERTS = ["HighErrorRate", "HighLatency"]
SEVERITY = {"InstanceDown": "critical", "PodCrashLooping": "critical", "HighErrorRate": "critical",
            "DiskAlmostFull": "warning", "HighCPU": "warning", "HighLatency": "warning"}


@dataclass(frozen=True)
class Service:
    name: str
    tier: str
    instances: int
    depends_on: tuple[str, ...]


def build_world(rng: random.Random) -> dict[str, Service]:
    """A deterministic dependency graph: each service depends on one to three services of the tier below."""
    world: dict[str, Service] = {}
    below: list[str] = []
    for tier, names in TIERS.items():
        for name in names:
            deps = tuple(sorted(rng.sample(below, k=min(len(below), rng.randint(1, 3))))) if below else ()
            world[name] = Service(name, tier, rng.randint(2, 5), deps)
        below = names
    return world


def dependents(world: dict[str, Service], service: str) -> dict[str, int]:
    """Every service that depends on `service`, directly or not, with its distance from it."""
    distance = {service: 0}
    frontier = [service]
    while frontier:
        nxt = []
        for current in frontier:
            for other in world.values():
                if current in other.depends_on and other.name not in distance:
                    distance[other.name] = distance[current] + 1
                    nxt.append(other.name)
        frontier = nxt
    del distance[service]
    return distance


@dataclass
class Episode:
    """One alert's life: fires at `start`, resolves at `end` (None: still firing when the stream ends)."""

    labels: dict[str, str]
    start: datetime
    end: datetime | None
    failure: str
    root: str
    summary: str
    flaps: list[tuple[datetime, datetime]] = field(default_factory=list)


def labels_for(world: dict[str, Service], service: str, alertname: str, instance: int) -> dict[str, str]:
    svc = world[service]
    return {"alertname": alertname, "service": service, "instance": f"{service}-{instance}:9100",
            "severity": SEVERITY[alertname], "team": TEAMS[svc.tier], "tier": svc.tier}


def failure_episodes(world: dict[str, Service], rng: random.Random, failure: str, start: datetime) -> list[Episode]:
    root = rng.choices(list(world), weights=[5 if s.tier == "infra" else 3 if s.tier == "platform" else 1
                                              for s in world.values()])[0]
    duration = timedelta(minutes=rng.randint(5, 40))
    episodes = []
    root_alert = rng.choice(ROOT_ALERTS[world[root].tier])
    for instance in rng.sample(range(world[root].instances), k=rng.randint(1, world[root].instances)):
        begin = start + timedelta(seconds=rng.randint(0, 20))
        episodes.append(Episode(labels_for(world, root, root_alert, instance), begin, begin + duration,
                                failure, root, f"{root_alert} on {root}"))
    for service, distance in dependents(world, root).items():
        if rng.random() < 0.35 * distance:  # far dependents often degrade gracefully and stay quiet
            continue
        alertname = rng.choice(SYMPTOM_ALERTS)
        delay = timedelta(seconds=distance * rng.randint(30, 90))
        for instance in rng.sample(range(world[service].instances), k=rng.randint(1, world[service].instances)):
            begin = start + delay + timedelta(seconds=rng.randint(0, 30))
            end = start + duration + delay / 2 + timedelta(seconds=rng.randint(0, 60))
            episodes.append(Episode(labels_for(world, service, alertname, instance), begin, end,
                                    failure, root, f"{alertname} on {service} (caused by {root})"))
    return episodes


def transient(world: dict[str, Service], rng: random.Random, failure: str, start: datetime) -> Episode:
    service = rng.choice(list(world))
    alertname = rng.choice(ROOT_ALERTS[world[service].tier])
    end = start + timedelta(seconds=rng.randint(60, 300))
    return Episode(labels_for(world, service, alertname, rng.randrange(world[service].instances)), start, end,
                   failure, service, f"transient {alertname} on {service}")


def flapping(world: dict[str, Service], rng: random.Random, failure: str, start: datetime) -> Episode:
    service = rng.choice(list(world))
    episode = Episode(labels_for(world, service, "HighLatency", rng.randrange(world[service].instances)), start,
                      None, failure, service, f"flapping HighLatency on {service}")
    at = start
    for _ in range(rng.randint(6, 12)):
        up = at + timedelta(seconds=rng.randint(60, 180))
        episode.flaps.append((at, up))
        at = up + timedelta(seconds=rng.randint(60, 180))
    episode.end = episode.flaps[-1][1]
    return episode


def lines_for(episode: Episode, repeat: timedelta, horizon: datetime) -> list[tuple[datetime, dict]]:
    """The deliveries Alertmanager would make for one episode: repeats while firing, then a resolve."""
    spans = episode.flaps or [(episode.start, episode.end)]
    out = []
    for begin, end in spans:
        stop = min(end or horizon, horizon)
        at = begin
        while at < stop:
            out.append((at, {"status": "firing", "startsAt": begin, "endsAt": None}))
            at += repeat
        if end is not None and end <= horizon:
            out.append((end, {"status": "resolved", "startsAt": begin, "endsAt": end}))
    return [(at, {
        "status": fields["status"],
        "labels": episode.labels,
        "annotations": {"summary": episode.summary},
        "startsAt": fields["startsAt"].isoformat().replace("+00:00", "Z"),
        "endsAt": fields["endsAt"].isoformat().replace("+00:00", "Z") if fields["endsAt"] else ZERO_TIME,
        "generatorURL": "http://prometheus.example:9090/graph",
        "receivedAt": at.isoformat().replace("+00:00", "Z"),
        "truth": {"failure": episode.failure, "root": episode.root},
    }) for at, fields in out]


def merge_overlaps(episodes: list[Episode]) -> list[Episode]:
    """One alert per label set at a time, as Alertmanager keeps it: an episode that starts while another with
    the same labels still fires extends that one (which keeps its ground truth) instead of starting anew."""
    merged: list[Episode] = []
    active: dict[str, Episode] = {}
    for episode in sorted(episodes, key=lambda e: e.start):
        key = json.dumps(episode.labels, sort_keys=True)
        current = active.get(key)
        if current is not None and not current.flaps and not episode.flaps and (current.end is None or episode.start <= current.end):
            current.end = None if episode.end is None or current.end is None else max(current.end, episode.end)
            continue
        if current is not None and (current.flaps or episode.flaps) and (current.end is None or episode.start <= current.end):
            continue  # a flapping alert already owns these labels for now
        active[key] = episode
        merged.append(episode)
    return merged


def generate(seed: int, failures: int, transients: int, flappers: int, hours: float,
             repeat_seconds: int, start: datetime = T0) -> tuple[dict[str, Service], list[dict]]:
    rng = random.Random(seed)
    world = build_world(rng)
    horizon = start + timedelta(hours=hours)
    span = int(hours * 3600)
    episodes: list[Episode] = []
    for n in range(failures):
        episodes += failure_episodes(world, rng, f"F{n:04d}", start + timedelta(seconds=rng.randrange(span)))
    for n in range(transients):
        episodes.append(transient(world, rng, f"T{n:04d}", start + timedelta(seconds=rng.randrange(span))))
    for n in range(flappers):
        episodes.append(flapping(world, rng, f"L{n:04d}", start + timedelta(seconds=rng.randrange(span))))
    lines: list[tuple[datetime, int, dict]] = []
    for number, episode in enumerate(merge_overlaps(episodes)):
        lines += [(at, number, line) for at, line in lines_for(episode, timedelta(seconds=repeat_seconds), horizon)]
    lines.sort(key=lambda item: (item[0], item[1]))
    return world, [line for _, _, line in lines]


def catalog_yaml(world: dict[str, Service]) -> str:
    out = ["# Generated by examples/storm.py (the storm generator's world); edit the generator, not this file.",
           "services:"]
    for svc in world.values():
        deps = ", ".join(svc.depends_on)
        out.append(f"  - name: {svc.name}\n    team: {TEAMS[svc.tier]}\n    tier: {svc.tier}\n    depends_on: [{deps}]")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--failures", type=int, default=25, help="root failures that spread along dependencies")
    parser.add_argument("--transients", type=int, default=40, help="short single alerts that resolve by themselves")
    parser.add_argument("--flappers", type=int, default=3, help="alerts that flap")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=60, help="seconds between repeats of a firing alert")
    parser.add_argument("--start", type=datetime.fromisoformat, default=T0,
                        help=f"when the storm begins (RFC 3339 with a zone; default {T0.isoformat()}, so runs compare)")
    parser.add_argument("--out", type=Path, help="JSON lines file (default: standard output)")
    parser.add_argument("--catalog-out", type=Path, help="also write the service catalog (services.yaml)")
    args = parser.parse_args(argv)
    world, lines = generate(args.seed, args.failures, args.transients, args.flappers, args.hours, args.repeat, args.start)
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {len(lines)} alert deliveries to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.catalog_out:
        args.catalog_out.write_text(catalog_yaml(world))
    return 0


if __name__ == "__main__":
    sys.exit(main())
