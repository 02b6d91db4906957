"""Correlation quality over many worlds: does grouping hold up on worlds it was not tuned on?

Each seed draws a world (`examples/storm.py --world`: its services, graph shape, clusters, pace, noise,
flappers and re-send interval), generates its storm with the ground truth of every alert, and replays it
offline with the configuration a team would write for that world (its catalog and one topology policy,
grouped by cluster). Scores per world:

- pairwise precision and recall: over pairs of distinct alerts (fingerprints) that belong to one failure,
  "grouped together" against "the same failure" (an alert that recurs in two failures is left out);
- incidents per real failure: incidents opened over distinct failures (a cascade, a noise alert, a flapper);
- pages against Alertmanager's: Firebreak's pages over the notifications Alertmanager would send with
  group_by [alertname, service, cluster], one per group that starts firing and one per group_interval (5 min)
  in which new alerts join (repeat_interval not counted).

Seeds are split into a set to tune on and a disjoint set only reported (TUNE_SEEDS, REPORT_SEEDS): a gap
between the two is overfitting.

    python bench/worlds.py                      # both sets, medians, with this checkout's code
    python bench/worlds.py --seeds 101-110 --json out.json
    PYTHONPATH=/path/to/other/checkout python bench/worlds.py --json before.json   # another version's code

The script imports `correlation` and `firebreak` from wherever Python finds them first (PYTHONPATH before
the installed package), and the generator from this checkout, so two versions score the same worlds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from math import comb
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TUNE_SEEDS = tuple(range(1, 13))  # what the defaults were chosen on
REPORT_SEEDS = tuple(range(101, 125))  # never looked at while tuning
AM_GROUP_BY = ("alertname", "service", "cluster")
TARGETS = {"precision": 0.95, "recall": 0.90, "incidents_per_failure": 1.2, "pages_vs_alertmanager": 0.5}


def storm_module() -> Any:
    """examples/storm.py of this checkout, loaded by path (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("firebreak_storm", ROOT / "examples" / "storm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def pairwise(assigned: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    """(precision, recall) over pairs of keys (fingerprints) in both maps: the same group in `assigned` against
    the same failure in `truth`. No pairs on a side scores 1.0 on it."""
    keys = [k for k in assigned if k in truth]
    both = Counter((assigned[k], truth[k]) for k in keys)
    grouped = Counter(assigned[k] for k in keys)
    true = Counter(truth[k] for k in keys)
    tp = sum(comb(n, 2) for n in both.values())
    predicted = sum(comb(n, 2) for n in grouped.values())
    actual = sum(comb(n, 2) for n in true.values())
    return (tp / predicted if predicted else 1.0), (tp / actual if actual else 1.0)


def alertmanager_groups(
    records: list[dict], group_by: tuple[str, ...] = AM_GROUP_BY, group_interval: float = 300.0
) -> tuple[dict[str, str], int]:
    """Alertmanager's grouping of a stream, simulated: each fingerprint's cluster is the episode of its group
    (the `group_by` label values) it first fired in; an episode starts when a group with nothing firing gets an
    alert. Also counts the notifications: the first of each episode and one per group_interval with news."""
    from correlation.fingerprint import fingerprint

    firing: dict[str, set[str]] = {}
    episode: dict[str, int] = {}
    last_sent: dict[str, float] = {}
    pending: dict[str, bool] = {}
    cluster: dict[str, str] = {}
    pages = 0
    for record in sorted(records, key=lambda r: r["receivedAt"]):
        labels = record["labels"]
        group = "/".join(labels.get(name, "") for name in group_by)
        fp = fingerprint(labels)
        now = datetime.fromisoformat(record["receivedAt"].replace("Z", "+00:00")).timestamp()
        active = firing.setdefault(group, set())
        if pending.get(group) and now - last_sent[group] >= group_interval:
            pages, last_sent[group], pending[group] = pages + 1, now, False
        if record["status"] == "resolved":
            active.discard(fp)
            continue
        if not active:
            episode[group] = episode.get(group, 0) + 1
            pages, last_sent[group], pending[group] = pages + 1, now, False
        elif fp not in active:
            pending[group] = True
        active.add(fp)
        cluster.setdefault(fp, f"{group}#{episode[group]}")
    return cluster, pages


def truth_of(records: list[dict]) -> tuple[dict[str, str], int]:
    """Each fingerprint's failure (fingerprints seen in two failures left out), and how many failures fired."""
    from correlation.fingerprint import fingerprint

    failures_of: dict[str, set[str]] = {}
    for record in records:
        failures_of.setdefault(fingerprint(record["labels"]), set()).add(str(record["truth"]["failure"]))
    failures = {f for found in failures_of.values() for f in found}
    return {fp: next(iter(f)) for fp, f in failures_of.items() if len(f) == 1}, len(failures)


def known_catalog(storm: Any, world: Any, coverage: float) -> str:
    """The team's catalog of `world`: each real dependency listed with probability `coverage` (drawn from the
    world's seed, so every run and version sees the same gaps)."""
    import random

    rng = random.Random(f"catalog-{world.seed}")
    services = {
        name: svc.__class__(
            svc.name, svc.tier, svc.instances, tuple(d for d in svc.depends_on if rng.random() < coverage)
        )
        for name, svc in world.services.items()
    }
    return storm.catalog_yaml(services)


def score_world(seed: int, hours: float, learn: bool = False, coverage: float = 1.0) -> dict[str, Any]:
    """Replay one world's storm with the team's configuration and score it (see the module's docstring).
    `coverage`: the share of the world's dependencies the team's catalog lists; `learn`: the policy learns."""
    from correlation.fingerprint import fingerprint
    from correlation.replay import Report, read_lines, replay
    from firebreak.settings import Settings

    storm = storm_module()
    world = storm.draw_world(seed, hours)
    _, records = storm.generate(seed, 0, 0, 0, hours, 60, world=world)
    lines = [json.dumps(r) for r in records]
    with tempfile.TemporaryDirectory() as folder:
        services, policies = Path(folder) / "services.yaml", Path(folder) / "correlation.yaml"
        services.write_text(known_catalog(storm, world, coverage))
        text = storm.policies_yaml(world)
        policies.write_text(text + ("    learn: true\n" if learn else ""))
        rules = Settings(policies_file=policies, services_file=services).load_rules()
    report = Report()
    items = read_lines(lines, report)
    started = time.perf_counter()
    replay(items, rules, report=report)
    seconds = time.perf_counter() - started
    truth, failures = truth_of(records)
    members: dict[str, str] = {}
    for incident in report.incidents.values():
        for labels in incident.members.values():
            members.setdefault(fingerprint(labels), incident.id)
    precision, recall = pairwise(members, truth)
    am_groups, am_pages = alertmanager_groups(records)
    am_precision, am_recall = pairwise(am_groups, truth)
    pages = report.summary()["pages"]
    return {
        "seed": seed,
        "world": world.describe(),
        "alerts": len(items),
        "real_failures": failures,
        "precision": precision,
        "recall": recall,
        "incidents": len(report.incidents),
        "incidents_per_failure": len(report.incidents) / failures if failures else 0.0,
        "pages": pages,
        "am_pages": am_pages,
        "pages_vs_alertmanager": pages / am_pages if am_pages else 0.0,
        "am_precision": am_precision,
        "am_recall": am_recall,
        "alerts_per_second": len(items) / seconds,
    }


def medians(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("precision", "recall", "incidents_per_failure", "pages_vs_alertmanager", "am_precision", "am_recall")
    return {k: statistics.median(r[k] for r in rows) for k in keys}


def missed(summary: dict[str, float]) -> list[str]:
    """The targets these medians miss: precision and recall at least, incidents per failure and pages at most."""
    out = [f"{k} {summary[k]:.3f} < {TARGETS[k]}" for k in ("precision", "recall") if summary[k] < TARGETS[k]]
    return out + [
        f"{k} {summary[k]:.2f} > {TARGETS[k]}"
        for k in ("incidents_per_failure", "pages_vs_alertmanager")
        if summary[k] > TARGETS[k]
    ]


def seeds_of(text: str) -> tuple[int, ...]:
    """`1-12,101` -> (1, ..., 12, 101); argparse.ArgumentTypeError naming the fix otherwise."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or not (high or low).isdigit() or int(high or low) < int(low):
            raise argparse.ArgumentTypeError(f"{part!r} is not a seed or a rising range; write e.g. 1-12,101")
        out += range(int(low), int(high or low) + 1)
    return tuple(out)


def _bounded(kind: type, low: float, high: float | None = None):  # type: ignore[no-untyped-def]
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(
                f"{text} is outside {low:g} to {high:g}" if high is not None else f"{text} is below {low:g}"
            )
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seeds", type=seeds_of, help="score only these (e.g. 1-12,101); default: the tune and report sets"
    )
    parser.add_argument("--hours", type=_bounded(float, 0.1, 24 * 14), default=8.0, help="how long each storm lasts")
    parser.add_argument("--learn", action="store_true", help="turn on co-occurrence learning in the team's policy")
    parser.add_argument(
        "--coverage",
        type=_bounded(float, 0.0, 1.0),
        default=1.0,
        help="the share of dependencies the team's catalog lists (0 to 1)",
    )
    parser.add_argument("--first", type=_bounded(int, 1), help="only the first N seeds of each set (a quick look)")
    parser.add_argument("--only", choices=("tune", "report"), help="only this set")
    parser.add_argument("--json", type=Path, help="write every world's scores here")
    parser.add_argument("--quiet", action="store_true", help="no line per world")
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():
        parser.error(f"--json {args.json}: its folder does not exist")
    sets = {"seeds": args.seeds} if args.seeds else {"tune": TUNE_SEEDS, "report": REPORT_SEEDS}
    sets = {name: seeds[: args.first] for name, seeds in sets.items() if args.only in (None, name)}
    out: dict[str, Any] = {}
    for name, seeds in sets.items():
        rows = []
        for n, seed in enumerate(seeds, start=1):
            row = score_world(seed, args.hours, args.learn, args.coverage)
            rows.append(row)
            if not args.quiet:
                print(
                    f"[{name} {n}/{len(seeds)}] {row['world']}\n    precision {row['precision']:.3f} recall "
                    f"{row['recall']:.3f} incidents/failure {row['incidents_per_failure']:.2f} pages "
                    f"{row['pages']} vs Alertmanager {row['am_pages']}",
                    file=sys.stderr,
                )
        summary = medians(rows)
        out[name] = {"worlds": rows, "median": summary, "met": not missed(summary), "missed": missed(summary)}
        print(
            f"{name}: median precision {summary['precision']:.3f} recall {summary['recall']:.3f} incidents/failure "
            f"{summary['incidents_per_failure']:.2f} pages {summary['pages_vs_alertmanager']:.2f}x Alertmanager "
            f"(Alertmanager's own precision {summary['am_precision']:.3f} recall {summary['am_recall']:.3f}); targets: "
            f"{'met' if not missed(summary) else 'missed ' + ', '.join(missed(summary))}"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
