"""The benchmark harness: Firebreak side by side with Debian's Alertmanager and a bare Kafka consumer.

    make bench          # every scenario, 3 runs each (about 12 minutes)
    make bench-quick    # smaller sizes, 1 run each, no scale-out (about 2 minutes)

It starts its own Kafka and Redis (deploy/local/stack.sh, free ports, a temporary folder), Firebreak's ingest
and worker, and `prometheus-alertmanager` on loopback; load comes from bench/loadgen.py processes. Each
scenario's figures go into a dated section appended to BENCHMARKS.md, with a PNG chart per scenario in
bench/charts/. Ratios are taken against the baseline measured in the same run; with several runs, the
median of the runs is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stream_probe import cpu_seconds, prefill, run_worker  # noqa: E402
from bench.worlds import alertmanager_groups, pairwise, truth_of  # noqa: E402 - pairwise: tests score with it
from firebreak.settings import Settings  # noqa: E402
from tests.conftest import (  # noqa: E402 - the same helpers the integration tests start services with
    TOKEN,
    Ingest,
    Stack,
    free_port,
    launch_stack,
    start_ingest,
    start_ready_worker,
    start_worker,
    wait_until,
    worker_counts,
)

CHARTS = ROOT / "bench" / "charts"
PACK = 100  # alerts per pre-filled record: what ingest's group commit packs under load


def log(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


@dataclass
class Sizes:
    runs: int
    ingest_seconds: float
    stream_records: int
    steady_seconds: float
    steady_rates: tuple[int, ...]
    memory_alerts: tuple[int, ...]
    scale_records: int = 20_000
    prometheus: tuple[int, int, int] = (50_000, 60, 180)  # active alerts, re-send interval s, duration s
    decision_log_off: bool = True  # also run the stream with the decision log off, on its own fresh stack
    single_records: bool = True  # also run the storm written as the previous version's single-alert records

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        if quick:
            return cls(
                runs=1,
                ingest_seconds=3,
                stream_records=20_000,
                steady_seconds=4,
                steady_rates=(1000,),
                memory_alerts=(5_000,),
                scale_records=20_000,
                decision_log_off=False,
                single_records=False,
                prometheus=(10_000, 10, 20),
            )
        # The issue's 1M-record stream would take the worker hours at today's rate (see BENCHMARKS.md).
        # Sized to finish in about 20 minutes on this 2-core machine at today's rates (BENCHMARKS.md).
        return cls(
            runs=3,
            ingest_seconds=8,
            stream_records=60_000,
            steady_seconds=10,
            steady_rates=(1000, 5000),
            memory_alerts=(10_000, 50_000),
            scale_records=20_000,
            prometheus=(50_000, 60, 180),
        )


@dataclass
class Scenario:
    number: int
    name: str
    measure: str
    rows: list[list[str]] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    verdict: str = ""
    chart: str | None = None
    notes: list[str] = field(default_factory=list)


class Alertmanager:
    """Debian's prometheus-alertmanager on a free loopback port, grouping like Firebreak's default policy."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "alertmanager.yml"
        config.write_text(
            "route: {receiver: blackhole, group_by: [alertname, service], group_wait: 30s}\n"
            "receivers: [{name: blackhole}]\n"
        )
        self.process = subprocess.Popen(
            [
                "prometheus-alertmanager",
                f"--config.file={config}",
                f"--storage.path={folder / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=(folder / "alertmanager.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self._ready(), 30, "Alertmanager to answer")

    def _ready(self) -> bool:
        try:
            return requests.get(self.url + "/-/ready", timeout=1).ok
        except requests.ConnectionError:
            return False

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def load(
    url: str,
    path: str,
    folder: Path,
    seconds: float,
    batch: int,
    rate: float = 1e9,
    concurrency: int = 4,
    **options: object,
) -> dict:
    """One bench/loadgen.py process; its result."""
    out = folder / f"load-{uuid.uuid4().hex[:8]}.json"
    command = [
        sys.executable,
        str(ROOT / "bench/loadgen.py"),
        "--url",
        url,
        "--path",
        path,
        "--run",
        uuid.uuid4().hex[:8],
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--batch",
        str(batch),
        "--concurrency",
        str(concurrency),
        "--give-up",
        "30",
        "--out",
        str(out),
    ]
    for name, value in options.items():
        command += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    subprocess.run(command, env={**os.environ, "FIREBREAK_LOAD_TOKEN": TOKEN}, check=True, timeout=seconds + 120)
    return json.loads(out.read_text())


# -- 1: ingest ---------------------------------------------------------------------------------------------


def scenario_ingest(sizes: Sizes, ingest: Ingest, am: Alertmanager, folder: Path) -> Scenario:
    s = Scenario(
        1,
        "Ingest: alerts answered per second",
        "alerts/s answered 202 (durable, acks=all) vs Alertmanager "
        "`POST /api/v2/alerts` (in memory), same payloads, 10,000 distinct alerts repeated",
    )
    s.header = [
        "batch",
        "senders",
        "Firebreak alerts/s",
        "Alertmanager alerts/s",
        "ratio",
        "Firebreak p99 ms",
        "Alertmanager p99 ms",
    ]
    series: dict[str, list[float]] = {}
    for batch, senders in ((100, 4), (1, 50)):
        fb_rates, am_rates, fb_p99, am_p99 = [], [], [], []
        for _ in range(sizes.runs):
            for target, rates, p99s in ((ingest.url, fb_rates, fb_p99), (am.url, am_rates, am_p99)):
                path = "/api/v1/alerts" if target == ingest.url else "/api/v2/alerts"
                result = load(
                    target, path, folder, sizes.ingest_seconds, batch, concurrency=senders, distinct=10_000, services=50
                )
                rates.append(result["accepted_count"] / result["seconds"])
                p99s.append(percentile(result["latencies_ms"], 0.99))
        fb, amr = statistics.median(fb_rates), statistics.median(am_rates)
        series[f"Firebreak, batch {batch}"] = fb_rates
        series[f"Alertmanager, batch {batch}"] = am_rates
        s.rows.append(
            [
                str(batch),
                str(senders),
                f"{fb:,.0f}",
                f"{amr:,.0f}",
                f"{fb / amr:.2f}x",
                f"{statistics.median(fb_p99):.0f}",
                f"{statistics.median(am_p99):.0f}",
            ]
        )
        log(f"ingest batch {batch}: Firebreak {fb:,.0f}/s, Alertmanager {amr:,.0f}/s")
    ratios = [float(r[4].rstrip("x")) for r in s.rows]
    s.verdict = (
        f"target ≥ 1.0x Alertmanager: {'met' if min(ratios) >= 1 else 'missed'} ({', '.join(r[4] for r in s.rows)})"
    )
    s.notes.append(
        "Senders are threads of one bench/loadgen.py process (its own interpreter), each posting and waiting "
        "for the answer before the next request; the same load against both."
    )
    s.chart = bar_chart("ingest", "Alerts answered per second (median of runs)", series)
    return s


# -- 2: stream stage ---------------------------------------------------------------------------------------


async def bare_loop(bootstrap: str, topic: str, count: int) -> float:
    """The limit: an aiokafka consumer reading and JSON-decoding every record, nothing else; records/s (`count`
    records)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen, started = 0, time.monotonic()
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batches.values():
                for r in records:
                    json.loads(r.value)
                seen += len(records)
    finally:
        await consumer.stop()
    return count / (time.monotonic() - started)


def scenario_stream(sizes: Sizes, folder: Path) -> Scenario:
    """One worker over a pre-filled `alerts` topic of packed records, as ingest's group commit writes them: the
    storm mix (each alert sent ten times in rounds, 90% re-sends, as Prometheus re-sends), all-distinct alerts,
    the storm with the decision log off, and the storm written as the previous version's single-alert records.
    A fresh stack per measurement; rates from the worker's start to the read model holding every incident event
    its alerts made; CPU-seconds of the worker process per 1,000 alerts."""
    storm, distinct = sizes.stream_records, sizes.stream_records // 4
    s = Scenario(
        2,
        "Stream: one worker over a pre-filled `alerts` topic",
        f"alerts/s from a worker's start until the read model holds every incident event ({storm:,} storm "
        f"alerts, 90% re-sends; {distinct:,} distinct alerts), packed {PACK} alerts a record, vs a bare aiokafka "
        "loop decoding the same records, and CPU-seconds of the worker per 1,000 alerts",
    )
    s.header = ["run", "mix", "bare loop alerts/s", "Firebreak alerts/s", "ratio", "worker CPU s / 1,000 alerts"]
    setups = {  # name -> (alerts, resend, single records, env)
        "storm (90% re-sends)": (storm, 10, False, {}),
        "all distinct": (distinct, 1, False, {}),
        "storm, decision log off": (storm, 10, False, {"FIREBREAK_DECISIONS_ENABLED": "false"}),
        "storm, previous version's single-alert records": (storm // 4, 10, True, {}),
    }
    if not sizes.decision_log_off:
        del setups["storm, decision log off"]
    if not sizes.single_records:
        del setups["storm, previous version's single-alert records"]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
    for run in range(1, sizes.runs + 1):
        for name, (count, resend, single, env) in setups.items():
            with launch_stack(folder / f"stack-{run}-{len(results[name])}-{resend}-{int(single)}-{len(env)}") as stack:
                before = stack.end_offsets("alerts")
                records = prefill(stack, count, resend, PACK, single)
                bare = asyncio.run(bare_loop(stack.bootstrap, "alerts", before + records)) * count / records
                measured = run_worker(stack, count, f"bench-stream-{run}", **env)
            measured["bare"] = bare
            results[name].append(measured)
            s.rows.append(
                [
                    str(run),
                    name,
                    f"{bare:,.0f}",
                    f"{measured['per_s']:,.0f}",
                    f"{measured['per_s'] / bare:.2f}x",
                    f"{measured['cpu_per_1000']:.3f}",
                ]
            )
            log(
                f"stream run {run}, {name}: {measured['per_s']:,.0f} alerts/s (bare {bare:,.0f}), "
                f"{measured['cpu_per_1000']:.3f} CPU s per 1,000"
            )
    medians = {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in results.items()}
    for name, m in medians.items():
        s.rows.append(
            [
                "median",
                name,
                f"{m['bare']:,.0f}",
                f"{m['per_s']:,.0f}",
                f"{m['per_s'] / m['bare']:.2f}x",
                f"{m['cpu_per_1000']:.3f}",
            ]
        )
    mix, flat = medians["storm (90% re-sends)"], medians["all distinct"]
    met = mix["per_s"] >= 20_000 and mix["per_s"] / mix["bare"] >= 0.25 and flat["per_s"] >= 5_000
    s.verdict = (
        f"target storm ≥ 20,000/s and ≥ 0.25x the bare loop, distinct ≥ 5,000/s: {'met' if met else 'missed'} "
        f"(storm {mix['per_s']:,.0f}/s, {mix['per_s'] / mix['bare']:.2f}x; distinct {flat['per_s']:,.0f}/s; "
        f"{mix['cpu_per_1000']:.3f} CPU s per 1,000 storm alerts)"
    )
    s.notes.append(
        "CPU per 1,000 alerts at 74557c1 (the per-record worker, single-alert records, measured by "
        "bench/stream_probe.py --firebreak on a checkout of it) is in the leading table of BENCHMARKS.md."
    )
    s.chart = bar_chart(
        "stream",
        "Alerts per second through one worker (median of runs)",
        {name: [r["per_s"] for r in rows] for name, rows in results.items()},
    )
    return s


# -- 7: scale-out ------------------------------------------------------------------------------------------


def service_pid(stack: Stack, name: str) -> int | None:
    pid_file = stack.folder / f"{name}.pid"
    return int(pid_file.read_text()) if pid_file.exists() else None


def scenario_scaleout(sizes: Sizes, folder: Path) -> Scenario:
    """One worker and two sharing the partitions, each setup a new consumer group over the same pre-filled
    `alerts`: time from start until every alert has its incident event, and the CPU each process used. The
    workers start together, so the group settles before the backlog is worked (a worker joining mid-run makes
    both re-process what was not committed yet, measured apart in BENCHMARKS.md)."""
    n = sizes.scale_records
    partitions = Settings.model_fields["topic_partitions"].default
    s = Scenario(
        7,
        "Scale-out: one worker vs two",
        f"alerts/s from start until all {n:,} pre-filled alerts have their "
        f"incident event ({partitions} partitions per topic); CPU cores used meanwhile per process",
    )
    s.header = ["workers", "run", "alerts/s", "CPU: workers", "CPU: Kafka", "CPU: Redis"]
    # Two workers with Faust's default of one standby copy per table partition (each worker also applies the
    # other's changelogs), and without standbys.
    setups = {"1": (1, {}), "2": (2, {}), "2, no standby": (2, {"FIREBREAK_WORKER_STANDBY_REPLICAS": "0"})}
    rates: dict[str, list[float]] = {name: [] for name in setups}
    cpu_of: dict[str, list[tuple[float, float, float]]] = {name: [] for name in setups}
    for run in range(1, min(sizes.runs, 1) + 1):
        for name, (count, env) in setups.items():
            # A fresh Kafka and Redis for each: every setup's new consumer group would otherwise also work
            # through the records earlier setups wrote to alert-events and incident-events.
            slug = name.replace(", ", "-").replace(" ", "-")
            with launch_stack(folder / f"stack-{slug}-{run}") as stack:
                prefill(stack, n, 1, PACK)
                env = {**env, "FIREBREAK_APP_ID": f"bench-scale-{uuid.uuid4().hex[:6]}"}
                others = [service_pid(stack, "kafka"), service_pid(stack, "redis")]
                before_others = [cpu_seconds(p) if p else 0.0 for p in others]
                started = time.monotonic()
                workers = [start_worker(stack, f"bench-scale-{slug}-{run}-{k}", **env) for k in range(count)]

                def folded() -> bool:  # every alert new to the group: one incident event each, in the read model
                    return (
                        sum(
                            sum(worker_counts(port, "firebreak_read_model_writes_total", "result").values())
                            for _, port in workers
                        )
                        >= n
                    )

                try:
                    wait_until(folded, 600, "incident events for every alert in the read model", interval=0.25)
                    took = time.monotonic() - started
                    used_workers = sum(cpu_seconds(w.popen.pid) for w, _ in workers) / took
                    used_others = [((cpu_seconds(p) if p else 0.0) - b) / took for p, b in zip(others, before_others)]
                finally:
                    for worker, _ in workers:
                        worker.stop()
                rate = n / took
                rates[name].append(rate)
                cpu = (used_workers, used_others[0], used_others[1])
                cpu_of[name].append(cpu)
                s.rows.append([name, str(run), f"{rate:,.0f}", f"{cpu[0]:.2f}", f"{cpu[1]:.2f}", f"{cpu[2]:.2f}"])
                log(
                    f"scale-out run {run}, {name} worker(s): {rate:,.0f} alerts/s, CPU {tuple(round(c, 2) for c in cpu)}"
                )
    for name in setups:
        cpu = [statistics.median(c[i] for c in cpu_of[name]) for i in range(3)]
        s.rows.append(
            [
                name,
                "median",
                f"{statistics.median(rates[name]):,.0f}",
                f"{cpu[0]:.2f}",
                f"{cpu[1]:.2f}",
                f"{cpu[2]:.2f}",
            ]
        )
    one = statistics.median(rates["1"])
    two, bare = statistics.median(rates["2"]), statistics.median(rates["2, no standby"])
    s.verdict = (
        f"reported: two workers make {two / one:.2f}x the throughput of one ({two:,.0f}/s vs {one:,.0f}/s), "
        f"{bare / one:.2f}x without standby tables"
    )
    s.notes.append(
        f"The machine has {os.cpu_count()} cores shared by the workers, Kafka and Redis (CPU columns, in cores; "
        "workers' start-up included). A standby copy makes each worker also apply the other's table changelogs."
    )
    s.chart = bar_chart(
        "scaleout",
        "Alerts per second through the pipeline (median of runs)",
        {f"{name} worker(s)": values for name, values in rates.items()},
    )
    return s


# -- 3: end to end -----------------------------------------------------------------------------------------


def incident_latencies(stack: Stack, run: str) -> list[float]:
    """Per alert of `run`: the incident-events record's broker timestamp minus the alert's receivedAt, in ms."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
    out: list[float] = []
    try:
        partitions = [TopicPartition("incident-events", p) for p in consumer.partitions_for_topic("incident-events")]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for r in records:
                    record = json.loads(r.value)
                    for event in record["events"] if record.get("type") == "incident_event_batch" else [record]:
                        alert = event.get("alert") or {}
                        if event.get("kind") in ("opened", "alert_added") and alert.get("labels", {}).get("run") == run:
                            received = datetime.fromisoformat(
                                alert.get("received_at") or alert["receivedAt"]
                            ).timestamp()
                            out.append(r.timestamp - received * 1000)
    finally:
        consumer.close()
    return out


def scenario_steady(sizes: Sizes, stack: Stack, ingest: Ingest, folder: Path) -> Scenario:
    s = Scenario(
        3,
        "End to end at a steady rate",
        "ms from ingest's 202 (receivedAt) to the incident event on Kafka "
        f"(broker timestamp), {sizes.steady_seconds:g} s at each rate, group_wait 0",
    )
    s.header = ["rate/s", "alerts", "p50 ms", "p99 ms", "max ms"]
    worker, _ = start_ready_worker(stack, "bench-steady")
    series: dict[str, list[float]] = {}
    try:
        for rate in sizes.steady_rates:
            run = uuid.uuid4().hex[:8]
            out = folder / f"steady-{run}.json"
            command = [
                sys.executable,
                str(ROOT / "bench/loadgen.py"),
                "--url",
                ingest.url,
                "--run",
                run,
                "--rate",
                str(rate),
                "--seconds",
                str(sizes.steady_seconds),
                "--batch",
                str(max(1, rate // 100)),
                "--concurrency",
                "4",
                "--per-service",
                "50",
                "--no-latencies",
                "--out",
                str(out),
            ]
            subprocess.run(command, env={**os.environ, "FIREBREAK_LOAD_TOKEN": TOKEN}, check=True)
            accepted = json.loads(out.read_text())["accepted_count"]
            wait_until(
                lambda: len(incident_latencies(stack, run)) >= accepted, 900, "every alert's incident event", interval=5
            )
            latencies = incident_latencies(stack, run)
            series[f"{rate}/s"] = latencies
            s.rows.append(
                [
                    str(rate),
                    f"{len(latencies):,}",
                    f"{percentile(latencies, 0.5):.0f}",
                    f"{percentile(latencies, 0.99):.0f}",
                    f"{max(latencies):.0f}",
                ]
            )
            log(f"steady {rate}/s: p50 {percentile(latencies, 0.5):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms")
    finally:
        worker.stop()
    p99 = {row[0]: float(row[3]) for row in s.rows}
    met = p99["1000"] <= 100 and p99.get("5000", 0) <= 500
    s.verdict = (
        f"target p99 ≤ 100 ms at 1,000/s and ≤ 500 ms at 5,000/s: {'met' if met else 'missed'} ("
        + ", ".join(f"{rate}/s: {value:.0f} ms" for rate, value in p99.items())
        + ")"
    )
    s.notes.append(
        "Batches of rate/100 alerts (10 a second per sender thread); the time to the first page is "
        "measured by bench/first_page.py (sections above)."
    )
    s.chart = histogram_chart("steady", "Ingest 202 to incident event (ms)", series)
    return s


# -- 8: the Prometheus pattern --------------------------------------------------------------------------


def scenario_prometheus(sizes: Sizes, stack: Stack, ingest: Ingest, folder: Path) -> Scenario:
    """Prometheus re-sends every firing alert about once a minute: N active alerts are N/60 deliveries a second
    of steady load before anything happens. A worker takes that load while a probe alert (new, so it opens an
    incident) is posted every two seconds; the probes' ingest-202-to-incident-event times are the worker's lag."""
    active, every, seconds = sizes.prometheus
    s = Scenario(
        8,
        "The Prometheus pattern: active alerts re-sent on an interval",
        f"{active:,} active alerts re-sent every {every} s for {seconds} s (batches of 64, as Prometheus' "
        "notifier sends), one new probe alert every 2 s: its ms from ingest's 202 to the incident event "
        "(the worker's lag), and the worker's RSS",
    )
    s.header = [
        "active alerts",
        "deliveries/s",
        "accepted",
        "probe p50 ms",
        "probe p99 ms",
        "probe max ms",
        "worker RSS MiB",
    ]
    worker, _ = start_ready_worker(stack, "bench-prometheus")
    probe_run = uuid.uuid4().hex[:8]
    out = folder / "prometheus-load.json"
    command = [
        sys.executable,
        str(ROOT / "bench/loadgen.py"),
        "--url",
        ingest.url,
        "--run",
        uuid.uuid4().hex[:8],
        "--rate",
        str(active / every),
        "--seconds",
        str(seconds),
        "--batch",
        "64",
        "--concurrency",
        "4",
        "--distinct",
        str(active),
        "--per-service",
        "100",
        "--no-latencies",
        "--out",
        str(out),
    ]
    try:
        load_process = subprocess.Popen(command, env={**os.environ, "FIREBREAK_LOAD_TOKEN": TOKEN})
        probes = 0
        while load_process.poll() is None:
            alert = {"labels": {"alertname": "BenchProbe", "service": f"probe-{probes}", "run": probe_run}}
            if ingest.post("/api/v1/alerts", json.dumps([alert])).status_code == 202:
                probes += 1
            time.sleep(2)
        accepted = json.loads(out.read_text())["accepted_count"]
        wait_until(
            lambda: len(incident_latencies(stack, probe_run)) >= probes, 600, "every probe's incident event", interval=2
        )
        lags = incident_latencies(stack, probe_run)
        rss = rss_kib(worker.popen.pid) / 1024
    finally:
        worker.stop()
    s.rows.append(
        [
            f"{active:,}",
            f"{active / every:,.0f}",
            f"{accepted:,}",
            f"{percentile(lags, 0.5):.0f}",
            f"{percentile(lags, 0.99):.0f}",
            f"{max(lags):.0f}",
            f"{rss:,.0f}",
        ]
    )
    worst = max(lags)
    s.verdict = (
        f"target worker lag under 1 s: {'met' if worst < 1000 else 'missed'} (probe max {worst:,.0f} ms, "
        f"p99 {percentile(lags, 0.99):,.0f} ms; worker RSS {rss:,.0f} MiB)"
    )
    log(f"prometheus pattern: probe p99 {percentile(lags, 0.99):.0f} ms, max {worst:.0f} ms, RSS {rss:.0f} MiB")
    return s


# -- 4: memory ---------------------------------------------------------------------------------------------


def redis_used(stack: Stack) -> int:
    import redis

    return int(redis.Redis.from_url(stack.redis_url).info("memory")["used_memory"])


def scenario_memory(sizes: Sizes, stack: Stack, ingest: Ingest, am: Alertmanager, folder: Path) -> Scenario:
    s = Scenario(
        4,
        "Memory per active alert",
        "worker RSS and Redis memory growth per active alert vs Alertmanager's RSS growth with the same alerts active",
    )
    s.header = [
        "active alerts",
        "Firebreak worker KiB/alert",
        "Redis KiB/alert",
        "Firebreak total KiB/alert",
        "Alertmanager KiB/alert",
        "ratio",
    ]
    worker, port = start_ready_worker(stack, "bench-memory")
    try:
        time.sleep(3)
        fb_before, redis_before, am_before = rss_kib(worker.popen.pid), redis_used(stack), am.rss_kib()
        posted = 0
        points: dict[str, list[float]] = {"Firebreak": [], "Alertmanager": []}
        run = uuid.uuid4().hex[:8]
        for target in sizes.memory_alerts:
            add = target - posted
            for url, path in ((ingest.url, "/api/v1/alerts"), (am.url, "/api/v2/alerts")):
                load(
                    url,
                    path,
                    folder,
                    600,
                    100,
                    count=add,
                    concurrency=4,
                    run=run,
                    start_index=posted,
                    per_service=100,
                    no_latencies=True,
                )
            posted = target
            processed = lambda: sum(worker_counts(port).values())  # noqa: E731
            wait_until(lambda: processed() >= posted, 1800, "the worker to take every alert", interval=1)
            time.sleep(3)
            fb = (rss_kib(worker.popen.pid) - fb_before) / posted
            rd = (redis_used(stack) - redis_before) / 1024 / posted
            amk = (am.rss_kib() - am_before) / posted
            points["Firebreak"].append(fb + rd)
            points["Alertmanager"].append(amk)
            s.rows.append(
                [f"{posted:,}", f"{fb:.2f}", f"{rd:.2f}", f"{fb + rd:.2f}", f"{amk:.2f}", f"{(fb + rd) / amk:.2f}x"]
            )
            log(f"memory at {posted:,}: Firebreak {fb + rd:.2f} KiB/alert, Alertmanager {amk:.2f} KiB/alert")
    finally:
        worker.stop()
    ratio = float(s.rows[-1][-1].rstrip("x"))
    s.verdict = (
        f"target ≤ 1.0x Alertmanager per alert: {'met' if ratio <= 1.0 else 'missed'} ({ratio:.2f}x at {s.rows[-1][0]})"
    )
    s.chart = line_chart("memory", "KiB per active alert", [int(r[0].replace(",", "")) for r in s.rows], points)
    return s


# -- 5, 6 and 9: replay and correlation quality ------------------------------------------------------------

BASELINE = "d1e1fac"  # the last commit before correlation took time, failure domains and history as evidence


def baseline_tree(folder: Path, commit: str = BASELINE) -> Path:
    """The source of `commit`, unpacked under `folder` (its `correlation` and `firebreak` for PYTHONPATH)."""
    target = folder / f"source-{commit}"
    target.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def worlds_run(folder: Path, name: str, args: list[str], source: Path | None = None) -> dict:
    """bench/worlds.py with `args`, with this checkout's code or `source`'s; its JSON."""
    out = folder / f"worlds-{name}.json"
    env = {**os.environ, **({"PYTHONPATH": str(source)} if source else {})}
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "worlds.py"), "--quiet", "--json", str(out), *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return json.loads(out.read_text())


def scenario_worlds(sizes: Sizes, folder: Path) -> Scenario:
    """9: correlation over many drawn worlds, tune and report seeds, before (BASELINE) and after, and learning."""
    first = [] if sizes.runs > 1 else ["--first", "4"]
    before = worlds_run(folder, "before", first, baseline_tree(folder))
    after = worlds_run(folder, "after", first)
    gappy = ["--coverage", "0.7", "--hours", "24", "--only", "report", *first]
    plain, learned = worlds_run(folder, "gappy", gappy), worlds_run(folder, "learned", [*gappy, "--learn"])
    s = Scenario(
        9,
        "Correlation over many worlds (tune and report seeds)",
        "medians over drawn worlds (bench/worlds.py; examples/storm.py --world: services, graph shape, clusters, "
        "pace, overlap, noise, flappers, re-send interval), each replayed with the configuration a team would "
        "write (its catalog, one topology policy grouped by cluster): pairwise precision and recall against the "
        "generator's truth, incidents per real failure, pages against Alertmanager's (group_by alertname, "
        "service, cluster), replay alerts/s. Defaults were chosen on the tune seeds only",
    )
    s.header = [
        "code",
        "seeds",
        "worlds",
        "precision",
        "recall",
        "incidents / failure",
        "pages vs Alertmanager",
        "replay alerts/s",
    ]

    def row(label: str, result: dict, key: str) -> list[str]:
        m, rows = result[key]["median"], result[key]["worlds"]
        rate = statistics.median(r["alerts_per_second"] for r in rows)
        return [
            label,
            key,
            str(len(rows)),
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['incidents_per_failure']:.2f}",
            f"{m['pages_vs_alertmanager']:.2f}x",
            f"{rate:,.0f}",
        ]

    s.rows = [
        row(f"before ({BASELINE})", before, "tune"),
        row(f"before ({BASELINE})", before, "report"),
        row("after", after, "tune"),
        row("after", after, "report"),
    ]
    am = after["report"]["median"]
    s.rows.append(
        [
            "Alertmanager grouping",
            "report",
            str(len(after["report"]["worlds"])),
            f"{am['am_precision']:.3f}",
            f"{am['am_recall']:.3f}",
            "",
            "1.00x",
            "",
        ]
    )
    s.rows += [
        row("after, catalog with 70% of the dependencies, 24 h", plain, "report"),
        row("after + `learn: true`, same", learned, "report"),
    ]
    report, tune = after["report"]["median"], after["tune"]["median"]
    close = all(abs(report[k] - tune[k]) <= 0.03 for k in ("precision", "recall"))
    speed = statistics.median(r["alerts_per_second"] for r in after["report"]["worlds"]) / statistics.median(
        r["alerts_per_second"] for r in before["report"]["worlds"]
    )
    ok = after["report"]["met"] and close and speed >= 0.9
    s.verdict = (
        f"targets on the report seeds (precision ≥ 0.95, recall ≥ 0.90, ≤ 1.2 incidents per failure, pages ≤ "
        f"0.5x Alertmanager's), tune seeds within 0.03, replay speed ≥ 0.9x before: {'met' if ok else 'missed'} "
        f"({report['precision']:.3f}, {report['recall']:.3f}, {report['incidents_per_failure']:.2f}, "
        f"{report['pages_vs_alertmanager']:.2f}x; tune {tune['precision']:.3f}, {tune['recall']:.3f}; replay "
        f"{speed:.2f}x)"
    )
    return s


def scenario_replay(sizes: Sizes, folder: Path) -> tuple[Scenario, Scenario]:
    from correlation.replay import Report, read_lines, replay

    storm = folder / "storm.jsonl"
    subprocess.run([sys.executable, str(ROOT / "examples/storm.py"), "--out", str(storm)], check=True)
    lines = storm.read_text().splitlines()
    settings = Settings(policies_file=ROOT / "config/correlation.yaml", services_file=ROOT / "examples/services.yaml")
    rules = settings.load_rules()
    rates = []
    for _ in range(max(3, sizes.runs)):
        report = Report()
        items = read_lines(lines, report)
        started = time.perf_counter()
        replay(items, rules, report=report)
        rates.append(len(items) / (time.perf_counter() - started))
    rate = statistics.median(rates)
    five = Scenario(
        5,
        "`firebreak replay` of the default storm",
        f"alerts/s offline ({len(lines):,} deliveries, shipped policies and catalog, parsing excluded)",
    )
    five.header = ["runs", "median alerts/s", "min", "max"]
    five.rows = [[str(len(rates)), f"{rate:,.0f}", f"{min(rates):,.0f}", f"{max(rates):,.0f}"]]
    five.verdict = f"target ≥ 100,000/s: {'met' if rate >= 100_000 else 'missed'} ({rate:,.0f}/s)"

    # 6: pairwise precision and recall of "these two alerts are the same failure", over distinct fingerprints.
    from correlation.fingerprint import fingerprint

    records = [json.loads(line) for line in lines]
    truth, _ = truth_of(records)  # an alert that recurs in two failures cannot be scored per fingerprint: left out
    members: dict[str, str] = {}
    for incident in report.incidents.values():
        for labels in incident.members.values():
            members.setdefault(fingerprint(labels), incident.id)
    am_groups, am_pages = alertmanager_groups(records)
    fb_p, fb_r = pairwise(members, truth)
    am_p, am_r = pairwise(am_groups, truth)
    fb_pages = len(report.incidents)
    six = Scenario(
        6,
        "Correlation quality on the labelled storm",
        "pairwise precision and recall of grouping against the "
        "generator's ground truth, over alerts that belong to one failure; pages = incidents opened (Firebreak) vs "
        "notifications Alertmanager would send: group_by alertname, service, one per group that starts firing "
        "and one per group_interval (5 min) in which new alerts join; repeat_interval not counted",
    )
    six.header = ["", "precision", "recall", "pages", "root failures"]
    failures = len(set(truth.values()))
    six.rows = [
        ["Firebreak (shipped policies)", f"{fb_p:.3f}", f"{fb_r:.3f}", str(fb_pages), str(failures)],
        ["Alertmanager grouping", f"{am_p:.3f}", f"{am_r:.3f}", str(am_pages), str(failures)],
    ]
    met = fb_p >= 0.95 and fb_r >= 0.90 and fb_pages <= 0.5 * am_pages
    six.verdict = (
        f"target precision ≥ 0.95, recall ≥ 0.90, pages ≤ 0.5x Alertmanager's: {'met' if met else 'missed'} "
        f"({fb_p:.3f}, {fb_r:.3f}, {fb_pages / am_pages:.2f}x)"
    )
    return five, six


# -- charts and the report ---------------------------------------------------------------------------------


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(name: str, title: str, series: dict[str, list[float]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = list(series)
    ax.barh(labels, [statistics.median(v) for v in series.values()], color="#d9534f")
    for i, values in enumerate(series.values()):
        ax.plot(values, [i] * len(values), "k.", label="runs" if i == 0 else None)
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _save(fig, name)


def histogram_chart(name: str, title: str, series: dict[str, list[float]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, values in series.items():
        ax.hist(values, bins=50, alpha=0.6, label=label)
    ax.set_title(title)
    ax.set_xlabel("ms")
    ax.legend()
    return _save(fig, name)


def line_chart(name: str, title: str, xs: list[int], series: dict[str, list[float]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, values in series.items():
        ax.plot(xs, values, "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("active alerts")
    ax.set_title(title)
    ax.legend()
    return _save(fig, name)


def _save(fig, name: str) -> str:  # type: ignore[no-untyped-def]
    CHARTS.mkdir(parents=True, exist_ok=True)
    path = CHARTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return str(path.relative_to(ROOT))


def markdown(scenarios: list[Scenario], quick: bool, seconds: float, only: list[str] | None = None) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    am_version = subprocess.run(["prometheus-alertmanager", "--version"], capture_output=True, text=True)
    am = (am_version.stdout or am_version.stderr).splitlines()[0] if am_version.returncode == 0 else "alertmanager"
    how = f"make {'bench-quick' if quick else 'bench'}"
    if only:
        how = "bench/run.py" + (" --quick" if quick else "") + "".join(f" --only {name}" for name in only)
    lines = [
        f"## `{how}` of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Commit {commit}; {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"{am}; took {seconds / 60:.1f} min.",
        "",
        "| # | scenario | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {s.number} | {s.name} | {s.verdict} |" for s in scenarios]
    for s in scenarios:
        lines += [
            "",
            f"### {s.number}. {s.name}",
            "",
            s.measure + ".",
            "",
            "| " + " | ".join(s.header) + " |",
            "|" + "---|" * len(s.header),
        ]
        lines += ["| " + " | ".join(r) + " |" for r in s.rows]
        lines += ["", *s.notes] if s.notes else []
        if s.chart:
            lines += ["", f"![{s.name}]({s.chart})"]
    return "\n".join(lines) + "\n"


def lead(section: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Put `section` first in BENCHMARKS.md, before the earlier runs (the file keeps its history below)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    first = text.find("\n## ")
    head, rest = (text, "") if first < 0 else (text[: first + 1], text[first + 1 :])
    path.write_text(head.rstrip("\n") + "\n\n" + section + ("\n" + rest if rest else ""))


SCENARIOS = ("ingest", "stream", "steady", "memory", "replay", "worlds", "scaleout", "prometheus")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes and one run each (under 2 minutes)")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument(
        "--no-write", action="store_true", help="print the section instead of appending it to BENCHMARKS.md"
    )
    args = parser.parse_args()
    # The quick version skips scale-out (a fresh stack for each of its setups); name it with --only to run it.
    chosen = args.only or [n for n in SCENARIOS if not (args.quick and n == "scaleout")]
    sizes = Sizes.of(args.quick)
    started = time.monotonic()
    scenarios: list[Scenario] = []
    with tempfile.TemporaryDirectory(prefix="firebreak-bench-") as tmp:
        folder = Path(tmp)
        if "replay" in chosen:
            log("replay and correlation quality (offline)")
            scenarios += scenario_replay(sizes, folder)
        if "worlds" in chosen:
            log("correlation over many worlds (offline, before and after)")
            scenarios.append(scenario_worlds(sizes, folder))
        for name, standalone in (("stream", scenario_stream), ("scaleout", scenario_scaleout)):
            if name in chosen:
                log(f"{name}: a fresh Kafka and Redis per run")
                where = folder / name
                where.mkdir()
                scenarios.append(standalone(sizes, where))
        live: dict[str, Callable[[Stack, Ingest, Alertmanager, Path], Scenario]] = {
            "ingest": lambda stack, ingest, am, where: scenario_ingest(sizes, ingest, am, where),
            "steady": lambda stack, ingest, am, where: scenario_steady(sizes, stack, ingest, where),
            "memory": lambda stack, ingest, am, where: scenario_memory(sizes, stack, ingest, am, where),
            "prometheus": lambda stack, ingest, am, where: scenario_prometheus(sizes, stack, ingest, where),
        }
        for name in (n for n in live if n in chosen):
            # A fresh Kafka, Redis, ingest and Alertmanager per scenario: a worker (a new consumer group) reads
            # `alerts` from the beginning, so another scenario's alerts would be a backlog in front of its own.
            where = folder / name
            where.mkdir()
            log(f"{name}: starting Kafka, Redis, ingest and Alertmanager")
            with launch_stack(where / "stack") as stack:
                ingest = start_ingest(stack, where / "ingest.log")
                am = Alertmanager(where)
                try:
                    wait_until(lambda: ingest.get("/readyz").status_code == 200, 30, "ingest to reach Kafka")
                    scenarios.append(live[name](stack, ingest, am, where))
                finally:
                    am.stop()
                    ingest.process.stop()
    scenarios.sort(key=lambda s: s.number)
    text = markdown(scenarios, args.quick, time.monotonic() - started, args.only)
    print(text)
    if not args.no_write:
        lead(text)
        log("BENCHMARKS.md now leads with this run")


if __name__ == "__main__":
    main()
