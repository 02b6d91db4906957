"""Time from an incident opening to its first page being accepted by the receiver, over the running stack.

    make demo                      # the local stack, a worker with the demo's notifications, the stand-in
    .venv/bin/python bench/first_page.py [--incidents 100] [--gap 0.2] [--runs 3]

Posts one critical alert per new service (each opens its own incident, routed to the demo's `default`
policy), waits for each incident's level-1 pages, and reads their `Delivery` records: `latency_ms` is
measured by the worker from the incident event's time to the receiver's 2xx. Each run's median and p99
are printed and written to BENCHMARKS.md; the incidents are resolved afterwards so nothing keeps paging.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _post(api: str, headers: dict[str, str], service: str) -> None:
    alert = {
        "labels": {"alertname": "BenchFirstPage", "service": service, "severity": "critical"},
        "startsAt": datetime.now(UTC).isoformat(),
    }
    requests.post(f"{api}/api/v1/alerts", data=json.dumps([alert]), headers=headers, timeout=10).raise_for_status()


def _first_page(api: str, headers: dict[str, str], incident_id: str) -> float | None:
    timeline = requests.get(f"{api}/api/v1/incidents/{incident_id}/timeline", headers=headers, timeout=10).json()[
        "timeline"
    ]
    first = [
        e["latency_ms"]
        for e in timeline
        if e["source"] == "notification"
        and e["kind"] == "page"
        and e.get("level") == 1
        and e["status"] == "delivered"
        and e.get("latency_ms") is not None
    ]
    return min(first) if first else None


def _mine(api: str, headers: dict[str, str], prefix: str) -> list[dict]:
    found = requests.get(f"{api}/api/v1/incidents?status=open&limit=1000", headers=headers, timeout=10).json()[
        "incidents"
    ]
    return [i for i in found if i["title"].startswith(prefix)]


def _resolve(api: str, headers: dict[str, str], incident_id: str) -> None:
    requests.post(
        f"{api}/api/v1/incidents/{incident_id}/resolve",
        data=json.dumps({"actor": "bench"}),
        headers=headers,
        timeout=10,
    )


def one_run(api: str, headers: dict[str, str], incidents: int, gap: float, burst: bool) -> list[float]:
    """Sequential: one incident at a time, resolved once its first page is in (the pipeline's own latency).
    Burst: all incidents `gap` apart, then wait (shows the per-channel rate limit delaying, not dropping)."""
    tag = uuid.uuid4().hex[:6]
    prefix = f"BenchFirstPage on bench-{tag}-"
    latencies: dict[str, float] = {}
    for n in range(incidents):
        _post(api, headers, f"bench-{tag}-{n}")
        if burst:
            time.sleep(gap)
        else:
            deadline = time.monotonic() + 60
            while len(latencies) <= n and time.monotonic() < deadline:
                for incident in _mine(api, headers, prefix):
                    if (
                        incident["id"] not in latencies
                        and (value := _first_page(api, headers, incident["id"])) is not None
                    ):
                        latencies[incident["id"]] = value
                        _resolve(api, headers, incident["id"])
                time.sleep(0.05)
            time.sleep(gap)
        print(f"\r  incidents {n + 1}/{incidents}, first pages {len(latencies)}", end="", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 180
    while len(latencies) < incidents and time.monotonic() < deadline:
        for incident in _mine(api, headers, prefix):
            if incident["id"] not in latencies and (value := _first_page(api, headers, incident["id"])) is not None:
                latencies[incident["id"]] = value
                _resolve(api, headers, incident["id"])
        time.sleep(1)
    print(file=sys.stderr)
    if len(latencies) < incidents:
        raise SystemExit(f"only {len(latencies)} of {incidents} incidents paged in time; is the demo stack running?")
    return list(latencies.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--token-file", type=Path, default=ROOT / ".firebreak/token")
    parser.add_argument("--incidents", type=int, default=30)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between incidents")
    parser.add_argument("--burst", action="store_true", help="post all incidents without waiting for their pages")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token_file.read_text().strip()}", "Content-Type": "application/json"}
    rows = []
    for run in range(1, args.runs + 1):
        print(f"run {run}/{args.runs}", file=sys.stderr)
        values = one_run(args.api, headers, args.incidents, args.gap, args.burst)
        rows.append((run, len(values), statistics.median(values), percentile(values, 0.99), max(values)))
        print(
            f"run {run}: {len(values)} incidents, median {rows[-1][2]:.0f} ms, p99 {rows[-1][3]:.0f} ms, max {rows[-1][4]:.0f} ms"
        )
    mode = "burst" if args.burst else "sequential"
    how = (
        f"All {args.incidents} posted {args.gap:g} s apart without waiting"
        if args.burst
        else f"{args.incidents} incidents one at a time, each resolved once paged, {args.gap:g} s apart"
    )
    marker = f"## First page latency, {mode} (bench/first_page.py{' --burst' if args.burst else ''})"
    section = [
        marker,
        "",
        f"Incident event to the first level's page accepted by the receiver, as the worker records it (the demo "
        f"stack: one worker, the stand-in webhook on loopback, the demo's channels allowing 600 deliveries a "
        f"minute). {how}. Measured {datetime.now(UTC):%Y-%m-%d}.",
        "",
        "| run | incidents | median ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    section += [f"| {r} | {n} | {m:.0f} | {p:.0f} | {x:.0f} |" for r, n, m, p, x in rows]
    section.append(
        f"| median of runs | | {statistics.median(r[2] for r in rows):.0f} | {statistics.median(r[3] for r in rows):.0f} | |"
    )
    text = (
        args.write.read_text()
        if args.write.exists()
        else "# Benchmarks\n\nFigures measured on the project's 2-core machine; see each script for how.\n"
    )
    if marker in text:
        head, _, rest = text.partition(marker)
        tail = rest.split("\n## ", 1)
        text = head + "\n".join(section) + ("\n\n## " + tail[1] if len(tail) > 1 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
    args.write.write_text(text)


if __name__ == "__main__":
    main()
