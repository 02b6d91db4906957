"""One worker over a pre-filled `alerts` topic: alerts/s and worker CPU-seconds per 1,000 alerts.

    python bench/stream_probe.py --alerts 50000 --resend 10 --pack 100 [--single]

`--resend R`: each distinct alert is sent R times (R-1 of them re-sends, as Prometheus re-sends every firing
alert); `--pack B`: records hold up to B alerts of one partition (AlertBatch, as ingest's group commit writes
them); `--single`: one alert per record, as the previous version's ingest wrote them. bench/run.py uses the
same functions for its stream scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import Stack, launch_stack, start_ready_worker, wait_until, worker_counts  # noqa: E402


def storm_alerts(count: int, resend: int, now: datetime) -> list[tuple[str, bytes]]:
    """`count` (fingerprint, alert JSON) in arrival order: count/resend distinct alerts, each sent `resend`
    times in rounds (every alert once, then every alert again: Prometheus' re-send pattern)."""
    from correlation.fingerprint import fingerprint
    from schemas import Alert

    distinct = max(1, count // resend)
    alerts = []
    for n in range(distinct):
        labels = {"alertname": "BenchStream", "service": f"svc-{n // 100}", "instance": f"i-{n}"}
        fp = fingerprint(labels)
        alerts.append(
            (
                fp,
                Alert(fingerprint=fp, status="firing", labels=labels, starts_at=now, source="bench", received_at=now)
                .model_dump_json(by_alias=True)
                .encode(),
            )
        )
    return [alerts[i % distinct] for i in range(count)]


def prefill(stack: Stack, count: int, resend: int = 1, pack: int = 100, single: bool = False) -> int:
    """Write `count` alerts to `alerts`; returns the records written."""
    from kafka import KafkaProducer

    from schemas.batch import pack_alerts, partition_of

    producer = KafkaProducer(
        bootstrap_servers=stack.bootstrap,
        linger_ms=20,
        batch_size=1024 * 1024,
        acks=1,
        max_request_size=8 * 1024 * 1024,
    )
    items = storm_alerts(count, resend, datetime.now(UTC))
    records = 0
    if single:
        for fp, value in items:
            producer.send("alerts", key=fp.encode(), value=value)
            records += 1
    else:
        partitions = len(producer.partitions_for("alerts"))
        pending: dict[int, list[bytes]] = {}
        for fp, value in items:
            partition = partition_of(fp.encode(), partitions)
            run = pending.setdefault(partition, [])
            run.append(value)
            if len(run) >= pack:
                producer.send("alerts", value=pack_alerts(run), partition=partition)
                records += 1
                pending[partition] = []
        for partition, run in pending.items():
            if run:
                producer.send("alerts", value=pack_alerts(run), partition=partition)
                records += 1
    producer.flush()
    producer.close()
    return records


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_worker(stack: Stack, count: int, name: str, firebreak: str | None = None, **env: str) -> dict[str, float]:
    """Start a fresh worker (its own consumer group) and time it through `count` alerts: dedup done, and every
    incident event the grouping stage made for them read into Redis (the read model's writes). `firebreak`: the
    console script to start it with (another checkout's, for a baseline); this environment's by default."""
    import tests.conftest as harness

    own = harness.FIREBREAK
    harness.FIREBREAK = firebreak or own
    try:
        worker, port = start_ready_worker(stack, name, FIREBREAK_APP_ID=f"bench-{uuid.uuid4().hex[:6]}", **env)
    finally:
        harness.FIREBREAK = own
    try:
        pid = worker.popen.pid
        spy = None
        if os.environ.get(
            "FIREBREAK_PROBE_PROFILE"
        ):  # a py-spy profile of the worker while it works (raw folded stacks)
            import subprocess

            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "-o",
                    os.environ["FIREBREAK_PROBE_PROFILE"],
                    "-p",
                    str(pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu0, started = cpu_seconds(pid), time.monotonic()
        wait_until(
            lambda: sum(worker_counts(port).values()) >= count, 1800, "the worker to dedup the topic", interval=0.25
        )
        dedup_s = time.monotonic() - started

        def settled() -> bool:
            made = sum(worker_counts(port, "firebreak_incident_events_total", "kind").values())
            folded = sum(worker_counts(port, "firebreak_read_model_writes_total", "result").values())
            return made > 0 and folded >= made

        wait_until(settled, 1800, "the read model to take every incident event", interval=0.25)
        total_s = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu0
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
    finally:
        worker.stop()
    return {"dedup_per_s": count / dedup_s, "per_s": count / total_s, "cpu_per_1000": cpu / count * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=50_000)
    parser.add_argument("--resend", type=int, default=10)
    parser.add_argument("--pack", type=int, default=100)
    parser.add_argument("--single", action="store_true")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--firebreak", help="the worker's console script, e.g. of another checkout's venv (a baseline)")
    args = parser.parse_args()
    keep = os.environ.get("FIREBREAK_PROBE_FOLDER")  # keep the stacks' logs there (worker logs included)
    with contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="fb-probe-") as folder:
        for run in range(args.runs):
            with launch_stack(Path(folder) / f"stack-{run}") as stack:
                records = prefill(stack, args.alerts, args.resend, args.pack, args.single)
                result = run_worker(stack, args.alerts, f"probe-{run}", firebreak=args.firebreak)
                print(json.dumps({"records": records, **{k: round(v, 3) for k, v in result.items()}}), flush=True)


if __name__ == "__main__":
    main()
