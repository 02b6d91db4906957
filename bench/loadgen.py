"""A load generator that behaves like a well-mannered alert source: distinct alerts at a steady rate, posted
in batches; 429, 503 and connection errors are retried after `Retry-After` (capped) until the batch is
accepted or the give-up time passes. Runs as its own process so it does not share a CPU-bound interpreter
with what it measures.

    python bench/loadgen.py --url http://127.0.0.1:8080 --run r1 --rate 50 --seconds 20 --out load.json

The token comes from FIREBREAK_LOAD_TOKEN. The output file holds what a ledger needs: alerts sent, the
fingerprints answered 202, answers by status, retries, batches given up, and per-request latencies.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import requests

MAX_RETRY_WAIT = 5.0


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.sent = 0
        self.accepted: list[str] = []
        self.accepted_count = 0
        self.statuses: Counter[str] = Counter()
        self.retries = 0
        self.given_up = 0
        self.latencies_ms: list[float] = []
        self.first_answer: dict[str, float] = {}

    def alerts(self, start: int) -> list[dict]:
        now = datetime.now(UTC).isoformat()
        out = []
        for n in range(start, start + self.args.batch):
            m = n % self.args.distinct if self.args.distinct else n  # which distinct alert this one repeats
            out.append(
                {
                    "labels": {
                        "alertname": self.args.alertname,
                        "service": f"{self.args.run}-svc-{self.service(m)}",
                        "instance": f"i-{m}",
                        "run": self.args.run,
                        "severity": self.args.severity,
                    },
                    "annotations": {"summary": f"load {m}"},
                    "startsAt": now,
                }
            )
        return out

    def service(self, n: int) -> int:
        """Round robin over --services, or (with --per-service K) a new service every K alerts, so incidents
        keep opening for as long as the load runs."""
        return n // self.args.per_service if self.args.per_service else n % self.args.services

    def post(self, session: requests.Session, body: list[dict], give_up_at: float) -> None:
        payload = json.dumps(body)
        headers = {
            "Authorization": f"Bearer {os.environ.get('FIREBREAK_LOAD_TOKEN', '')}",
            "Content-Type": "application/json",
        }
        with self.lock:
            self.sent += len(body)
        while True:
            started = time.monotonic()
            wait = 0.5
            try:
                response = session.post(self.args.url + self.args.path, data=payload, headers=headers, timeout=30)
                status = str(response.status_code)
                if response.status_code in (200, 202):  # Firebreak: 202 with fingerprints; Alertmanager: 200
                    fingerprints = response.json().get("fingerprints", []) if response.status_code == 202 else []
                    with self.lock:
                        self.accepted.extend(fingerprints)
                        self.accepted_count += len(body)
                        self.statuses[status] += 1
                        self.latencies_ms.append((time.monotonic() - started) * 1000)
                    return
                wait = float(response.headers.get("Retry-After", "1"))
            except requests.RequestException as exc:
                status = type(exc).__name__
            with self.lock:
                self.statuses[status] += 1
            retryable = status in ("429", "502", "503", "504") or not status.isdigit()  # not digits: no answer at all
            if not retryable:
                with self.lock:  # a 4xx other than 429 is final: the payload is at fault, retrying cannot help
                    self.given_up += 1
                return
            if time.monotonic() + wait > give_up_at:
                with self.lock:
                    self.given_up += 1
                return
            with self.lock:
                self.retries += 1
            time.sleep(min(wait, MAX_RETRY_WAIT))

    def worker(self, index: int, begin: float) -> None:
        args = self.args
        per_thread = args.rate / args.concurrency  # alerts a second this thread sends
        interval = args.batch / per_thread
        end = begin + args.seconds
        give_up_at = end + args.give_up
        session = requests.Session()
        n = 0
        while True:
            due = begin + n * interval + index * interval / args.concurrency
            start = args.start_index + (n * args.concurrency + index) * args.batch
            if args.count and start - args.start_index >= args.count:
                return  # this thread's share of --count is posted
            if due >= end or time.monotonic() >= end:
                return  # the time is up, even when the sender could not keep the rate
            if (delay := due - time.monotonic()) > 0:
                time.sleep(delay)
            self.post(session, self.alerts(start), give_up_at)
            n += 1

    def run(self) -> dict:
        begin = time.monotonic() + 0.2
        threads = [
            threading.Thread(target=self.worker, args=(i, begin), daemon=True) for i in range(self.args.concurrency)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - begin
        return {
            "sent": self.sent,
            "accepted": self.accepted,
            "accepted_count": self.accepted_count,
            "statuses": dict(self.statuses),
            "retries": self.retries,
            "given_up": self.given_up,
            "latencies_ms": [] if self.args.no_latencies else self.latencies_ms,
            "seconds": round(elapsed, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", default="/api/v1/alerts")
    parser.add_argument("--run", required=True, help="a label value that marks this load's alerts")
    parser.add_argument("--rate", type=float, required=True, help="alerts a second, over all threads")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--services", type=int, default=8)
    parser.add_argument(
        "--per-service", type=int, default=0, help="a new service every K alerts (instead of --services)"
    )
    parser.add_argument(
        "--count", type=int, default=0, help="stop after this many alerts (--seconds is then a time limit)"
    )
    parser.add_argument(
        "--distinct", type=int, default=0, help="repeat K distinct alerts (default: every alert distinct)"
    )
    parser.add_argument("--no-latencies", action="store_true", help="leave per-request latencies out of the output")
    parser.add_argument("--start-index", type=int, default=0)
    parser.add_argument("--alertname", default="LoadTest")
    parser.add_argument("--severity", default="warning")
    parser.add_argument("--give-up", type=float, default=120.0, help="seconds after the end to keep retrying a batch")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.batch < 1 or args.concurrency < 1:
        parser.error("--rate and --seconds must be positive, --batch and --concurrency at least 1")
    args.out.write_text(json.dumps(Load(args).run()))


if __name__ == "__main__":
    main()
