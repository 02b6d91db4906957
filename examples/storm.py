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
    python examples/storm.py --world 12 --out w12.jsonl --catalog-out w12-services.yaml --policies-out w12.yaml

`--world N` draws a different world from seed N (`draw_world`): its services and their names, the graph's
size and shape (layers, chains, fan-in to shared infrastructure), one to four clusters, how fast a failure
spreads per hop and how often a dependent stays quiet, how often failures come (and so overlap), noise
(isolated alerts that resolve by themselves, and some that linger), flapping alerts, and the re-send
interval. `--policies-out` writes the configuration a team would write for that world: one topology policy
grouped by cluster, with Firebreak's defaults for the rest. Benchmarks tune on some world seeds and only
report on others (bench/worlds.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ZERO_TIME = "0001-01-01T00:00:00Z"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

TIERS = {
    "infra": ["postgres", "redis-cache", "kafka", "dns", "object-store"],
    "platform": ["auth", "catalog", "inventory", "payments", "search", "users", "orders", "notifications"],
    "edge": ["web", "mobile-api", "checkout", "cart", "admin", "partner-api", "recommendations"],
}
TEAMS = {"infra": "platform-infra", "platform": "core-services", "edge": "storefront"}
ROOT_ALERTS = {
    "infra": ["InstanceDown", "DiskAlmostFull", "HighCPU"],
    "platform": ["HighErrorRate", "PodCrashLooping"],
    "edge": ["HighErrorRate", "HighLatency"],
}
SYMPTOM_ALERTS = ["HighErrorRate", "HighLatency"]
SEVERITY = {
    "InstanceDown": "critical",
    "PodCrashLooping": "critical",
    "HighErrorRate": "critical",
    "DiskAlmostFull": "warning",
    "HighCPU": "warning",
    "HighLatency": "warning",
}


@dataclass(frozen=True)
class Service:
    name: str
    tier: str
    instances: int
    depends_on: tuple[str, ...]


@dataclass(frozen=True)
class Spread:
    """How a world's failures behave: a failure reaches a dependent `hop` seconds per hop of distance (drawn
    between the two bounds), each alert starting up to `jitter` seconds later; a dependent at distance d
    stays quiet with probability `quiet_per_hop` x d. Alerts carry a `cluster` label when `clusters` is set;
    a failure stays in its cluster."""

    hop: tuple[int, int] = (30, 90)
    jitter: int = 30
    quiet_per_hop: float = 0.35
    clusters: tuple[str, ...] = ()


DEFAULT_SPREAD = Spread()


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


def dependents(world: dict[str, Service], service: str) -> dict[str, tuple[int, str]]:
    """Every service that depends on `service`, directly or not, nearest first: its distance from it and the
    dependency the failure reaches it through (one on a shortest path)."""
    found: dict[str, tuple[int, str]] = {service: (0, "")}
    frontier = [service]
    while frontier:
        nxt = []
        for current in frontier:
            for other in world.values():
                if current in other.depends_on and other.name not in found:
                    found[other.name] = (found[current][0] + 1, current)
                    nxt.append(other.name)
        frontier = nxt
    del found[service]
    return found


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


def labels_for(
    world: dict[str, Service], service: str, alertname: str, instance: int, cluster: str | None = None
) -> dict[str, str]:
    svc = world[service]
    labels = {
        "alertname": alertname,
        "service": service,
        "instance": f"{service}-{instance}:9100",
        "severity": SEVERITY[alertname],
        "team": TEAMS[svc.tier],
        "tier": svc.tier,
    }
    if cluster is not None:
        labels["cluster"] = cluster
        labels["instance"] = f"{service}-{instance}.{cluster}:9100"
    return labels


def failure_episodes(
    world: dict[str, Service], rng: random.Random, failure: str, start: datetime, spread: Spread = DEFAULT_SPREAD
) -> list[Episode]:
    root = rng.choices(
        list(world), weights=[5 if s.tier == "infra" else 3 if s.tier == "platform" else 1 for s in world.values()]
    )[0]
    cluster = rng.choice(spread.clusters) if spread.clusters else None
    duration = timedelta(minutes=rng.randint(5, 40))
    episodes = []
    root_alert = rng.choice(ROOT_ALERTS[world[root].tier])
    for instance in rng.sample(range(world[root].instances), k=rng.randint(1, world[root].instances)):
        begin = start + timedelta(seconds=rng.randint(0, 20))
        episodes.append(
            Episode(
                labels_for(world, root, root_alert, instance, cluster),
                begin,
                begin + duration,
                failure,
                root,
                f"{root_alert} on {root}",
            )
        )
    reached = {root: timedelta(0)}  # when the failure reaches each service: one hop after what it comes through
    for service, (distance, through) in dependents(world, root).items():
        delay = reached[service] = reached[through] + timedelta(seconds=rng.randint(*spread.hop))
        if rng.random() < spread.quiet_per_hop * distance:  # far dependents often degrade gracefully and stay quiet
            continue
        alertname = rng.choice(SYMPTOM_ALERTS)
        for instance in rng.sample(range(world[service].instances), k=rng.randint(1, world[service].instances)):
            begin = start + delay + timedelta(seconds=rng.randint(0, spread.jitter))
            end = start + duration + delay / 2 + timedelta(seconds=rng.randint(0, 60))
            episodes.append(
                Episode(
                    labels_for(world, service, alertname, instance, cluster),
                    begin,
                    end,
                    failure,
                    root,
                    f"{alertname} on {service} (caused by {root})",
                )
            )
    return episodes


def transient(
    world: dict[str, Service],
    rng: random.Random,
    failure: str,
    start: datetime,
    spread: Spread = DEFAULT_SPREAD,
    lasting: tuple[int, int] = (60, 300),
) -> Episode:
    service = rng.choice(list(world))
    alertname = rng.choice(ROOT_ALERTS[world[service].tier])
    cluster = rng.choice(spread.clusters) if spread.clusters else None
    end = start + timedelta(seconds=rng.randint(*lasting))
    return Episode(
        labels_for(world, service, alertname, rng.randrange(world[service].instances), cluster),
        start,
        end,
        failure,
        service,
        f"transient {alertname} on {service}",
    )


def flapping(
    world: dict[str, Service], rng: random.Random, failure: str, start: datetime, spread: Spread = DEFAULT_SPREAD
) -> Episode:
    service = rng.choice(list(world))
    cluster = rng.choice(spread.clusters) if spread.clusters else None
    episode = Episode(
        labels_for(world, service, "HighLatency", rng.randrange(world[service].instances), cluster),
        start,
        None,
        failure,
        service,
        f"flapping HighLatency on {service}",
    )
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
    return [
        (
            at,
            {
                "status": fields["status"],
                "labels": episode.labels,
                "annotations": {"summary": episode.summary},
                "startsAt": fields["startsAt"].isoformat().replace("+00:00", "Z"),
                "endsAt": fields["endsAt"].isoformat().replace("+00:00", "Z") if fields["endsAt"] else ZERO_TIME,
                "generatorURL": "http://prometheus.example:9090/graph",
                "receivedAt": at.isoformat().replace("+00:00", "Z"),
                "truth": {"failure": episode.failure, "root": episode.root},
            },
        )
        for at, fields in out
    ]


def merge_overlaps(episodes: list[Episode]) -> list[Episode]:
    """One alert per label set at a time, as Alertmanager keeps it: an episode that starts while another with
    the same labels still fires extends that one (which keeps its ground truth) instead of starting anew."""
    merged: list[Episode] = []
    active: dict[str, Episode] = {}
    for episode in sorted(episodes, key=lambda e: e.start):
        key = json.dumps(episode.labels, sort_keys=True)
        current = active.get(key)
        if (
            current is not None
            and not current.flaps
            and not episode.flaps
            and (current.end is None or episode.start <= current.end)
        ):
            current.end = None if episode.end is None or current.end is None else max(current.end, episode.end)
            continue
        if (
            current is not None
            and (current.flaps or episode.flaps)
            and (current.end is None or episode.start <= current.end)
        ):
            continue  # a flapping alert already owns these labels for now
        active[key] = episode
        merged.append(episode)
    return merged


INFRA_NAMES = [
    "mysql",
    "pg-main",
    "pg-ledger",
    "memcached",
    "rabbitmq",
    "etcd",
    "consul",
    "nats",
    "elasticsearch",
    "minio",
    "ceph",
    "vault",
    "haproxy",
    "envoy-edge",
    "coredns",
    "zookeeper",
    "cassandra",
    "clickhouse",
    "redis-sessions",
    "kafka-events",
]
APP_WORDS = [
    "ledger",
    "billing",
    "ads",
    "feed",
    "media",
    "geo",
    "fraud",
    "quote",
    "pricing",
    "shipping",
    "email",
    "sms",
    "session",
    "profile",
    "graph",
    "index",
    "ingest",
    "etl",
    "report",
    "audit",
    "identity",
    "tax",
    "invoice",
    "wallet",
    "loyalty",
    "chat",
    "upload",
    "thumbnail",
    "translate",
    "routing",
    "dispatch",
    "tracking",
    "review",
    "rating",
    "booking",
    "calendar",
    "coupon",
    "export",
    "webhook",
    "sync",
]
APP_SUFFIXES = ["-api", "-svc", "-worker", "-gateway", "-backend"]
CLUSTERS = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1", "ap-northeast-1"]
SHAPES = ("layers", "chains", "shared")


@dataclass(frozen=True)
class World:
    """A world drawn from a seed (`draw_world`): its services and how its failures, noise and senders behave."""

    seed: int
    shape: str
    services: dict[str, Service]
    spread: Spread
    failures: int
    transients: int  # isolated alerts that resolve by themselves within minutes
    lingering: int  # isolated alerts that fire for up to an hour (a warning nobody acts on)
    flappers: int
    repeat_seconds: int
    hours: float

    def describe(self) -> str:
        edges = sum(len(s.depends_on) for s in self.services.values())
        return (
            f"world {self.seed}: {self.shape}, {len(self.services)} services, {edges} dependencies, "
            f"{max(1, len(self.spread.clusters))} cluster(s), {self.spread.hop[0]}-{self.spread.hop[1]} s a hop, "
            f"{self.failures} failures, {self.transients + self.lingering} noise alerts, {self.flappers} flappers "
            f"in {self.hours:g} h, re-sent every {self.repeat_seconds} s"
        )


def _names(rng: random.Random, infra: int, apps: int) -> tuple[list[str], list[str]]:
    infra_names = rng.sample(INFRA_NAMES, k=infra)
    app_names: list[str] = []
    while len(app_names) < apps:
        name = rng.choice(APP_WORDS) + rng.choice(APP_SUFFIXES)
        if name not in app_names:
            app_names.append(name)
    return infra_names, app_names


def _graph(rng: random.Random, shape: str, infra: list[str], apps: list[str]) -> dict[str, Service]:
    """Services and dependencies in one of three shapes. `layers`: each app depends on one to three services of
    the layers below. `chains`: apps in chains of three to six, each on the one before and sometimes across.
    `shared`: a few infrastructure services nearly every app depends on (fan-in), and a thin layer above."""
    world = {name: Service(name, "infra", rng.randint(2, 5), ()) for name in infra}
    if shape == "chains":
        pending = list(apps)
        placed: list[str] = []
        while pending:
            length = min(len(pending), rng.randint(3, 6))
            chain, pending = pending[:length], pending[length:]
            below = rng.choice(infra)
            for name in chain:
                deps = {below}
                if placed and rng.random() < 0.2:
                    deps.add(rng.choice(placed))
                tier = "platform" if below in infra else "edge"
                world[name] = Service(name, tier, rng.randint(2, 5), tuple(sorted(deps)))
                below = name
            placed += chain
        return world
    if shape == "shared":
        shared = infra[: max(1, len(infra) // 2)]
        mid = apps[: len(apps) * 2 // 3]
        for name in apps:
            deps = set(rng.sample(shared, k=rng.randint(1, len(shared))))
            if name not in mid:
                deps |= set(rng.sample(mid, k=min(len(mid), rng.randint(1, 2))))
            world[name] = Service(name, "platform" if name in mid else "edge", rng.randint(2, 5), tuple(sorted(deps)))
        for name in infra[len(shared) :]:  # the rest of the infrastructure hangs off one app each
            user = rng.choice(apps)
            svc = world[user]
            world[user] = Service(user, svc.tier, svc.instances, tuple(sorted({*svc.depends_on, name})))
        return world
    layers = [infra]
    rest = list(apps)
    while rest:
        size = min(len(rest), rng.randint(3, 8))
        layers.append(rest[:size])
        rest = rest[size:]
    for depth, layer in enumerate(layers[1:], start=1):
        below = [n for lower in layers[:depth] for n in lower]
        for name in layer:
            near = layers[depth - 1]
            deps = set(rng.sample(near, k=min(len(near), rng.randint(1, 2))))
            if rng.random() < 0.3:
                deps.add(rng.choice(below))
            tier = "platform" if depth < len(layers) - 1 else "edge"
            world[name] = Service(name, tier, rng.randint(2, 5), tuple(sorted(deps)))
    return world


def draw_world(seed: int, hours: float = 8.0) -> World:
    """A world from `seed`: every figure below is drawn, so no two seeds share a graph or a pace."""
    rng = random.Random(f"world-{seed}")
    shape = rng.choice(SHAPES)
    infra, apps = _names(rng, rng.randint(3, 8), rng.randint(8, 40))
    services = _graph(rng, shape, infra, apps)
    clusters = tuple(rng.sample(CLUSTERS, k=rng.randint(1, 4)))
    fast = rng.randint(5, 45)
    spread = Spread(
        hop=(fast, fast + rng.randint(15, 120)),
        jitter=rng.randint(10, 60),
        quiet_per_hop=rng.uniform(0.15, 0.45),
        clusters=clusters if len(clusters) > 1 else (),
    )
    per_hour = rng.uniform(0.5, 3.0) * len(clusters)  # failures an hour in each cluster: how much they overlap
    return World(
        seed=seed,
        shape=shape,
        services=services,
        spread=spread,
        failures=max(1, round(per_hour * hours)),
        transients=round(rng.uniform(1, 8) * hours),
        lingering=round(rng.uniform(0, 2) * hours),
        flappers=rng.randint(0, 6),
        repeat_seconds=rng.choice([30, 60, 60, 120, 300]),
        hours=hours,
    )


def generate(
    seed: int,
    failures: int,
    transients: int,
    flappers: int,
    hours: float,
    repeat_seconds: int,
    start: datetime = T0,
    world: World | None = None,
) -> tuple[dict[str, Service], list[dict]]:
    """The deliveries of a storm, in time order, and its world: the default one (`build_world`) from `seed`, or
    `world` with its own counts (then `failures`, `transients`, `flappers` and `repeat_seconds` are its)."""
    rng = random.Random(seed)
    spread, lingering = DEFAULT_SPREAD, 0
    if world is None:
        services = build_world(rng)
    else:
        services, spread, lingering = world.services, world.spread, world.lingering
        failures, transients, flappers, repeat_seconds = (
            world.failures,
            world.transients,
            world.flappers,
            world.repeat_seconds,
        )
    horizon = start + timedelta(hours=hours)
    span = int(hours * 3600)
    episodes: list[Episode] = []
    for n in range(failures):
        episodes += failure_episodes(services, rng, f"F{n:04d}", start + timedelta(seconds=rng.randrange(span)), spread)
    for n in range(transients):
        episodes.append(transient(services, rng, f"T{n:04d}", start + timedelta(seconds=rng.randrange(span)), spread))
    for n in range(lingering):
        episodes.append(
            transient(
                services, rng, f"N{n:04d}", start + timedelta(seconds=rng.randrange(span)), spread, lasting=(600, 3600)
            )
        )
    for n in range(flappers):
        episodes.append(flapping(services, rng, f"L{n:04d}", start + timedelta(seconds=rng.randrange(span)), spread))
    lines: list[tuple[datetime, int, dict]] = []
    for number, episode in enumerate(merge_overlaps(episodes)):
        lines += [(at, number, line) for at, line in lines_for(episode, timedelta(seconds=repeat_seconds), horizon)]
    lines.sort(key=lambda item: (item[0], item[1]))
    return services, [line for _, _, line in lines]


def policies_yaml(world: World) -> str:
    """The configuration a team would write for `world`: its catalog drives one topology policy, grouped by
    cluster when it has several; everything else is Firebreak's default."""
    group_by = "\n    group_by: [cluster]" if world.spread.clusters else ""
    return (
        "# Generated by examples/storm.py --world: what a team would write for this world.\n"
        "policies:\n  - name: services\n    match: ['service!=\"\"']\n    topology: true" + group_by + "\n"
    )


def catalog_yaml(world: dict[str, Service]) -> str:
    out = [
        "# Generated by examples/storm.py (the storm generator's world); edit the generator, not this file.",
        "services:",
    ]
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
    parser.add_argument(
        "--start",
        type=datetime.fromisoformat,
        default=T0,
        help=f"when the storm begins (RFC 3339 with a zone; default {T0.isoformat()}, so runs compare)",
    )
    parser.add_argument("--out", type=Path, help="JSON lines file (default: standard output)")
    parser.add_argument("--catalog-out", type=Path, help="also write the service catalog (services.yaml)")
    parser.add_argument(
        "--world",
        type=int,
        metavar="N",
        help="draw another world from seed N (see above); its counts "
        "replace --failures, --transients, --flappers and --repeat",
    )
    parser.add_argument("--policies-out", type=Path, help="with --world: also write the policies a team would write")
    args = parser.parse_args(argv)
    drawn = draw_world(args.world, args.hours) if args.world is not None else None
    if args.policies_out and drawn is None:
        parser.error("--policies-out needs --world")
    world, lines = generate(
        args.seed, args.failures, args.transients, args.flappers, args.hours, args.repeat, args.start, drawn
    )
    if drawn is not None:
        print(drawn.describe(), file=sys.stderr)
    if args.policies_out and drawn is not None:
        args.policies_out.write_text(policies_yaml(drawn))
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
