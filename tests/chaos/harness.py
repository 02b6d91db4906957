"""The fault-injection harness: a steady load from bench/loadgen.py, a fault, recovery, then the ledger.

The ledger reads the truth from Kafka (`alert-events`, `incident-events`, `notifications`) and from what the
receivers got (the stand-ins' request logs), never from Firebreak's own counters:

- every alert answered 202 is in exactly one incident, or was recorded as silenced/inhibited with a reason;
- no correlation key opened two incidents (the load's alerts never resolve, so one incident per key is right);
- the read model (the API) holds every incident and alert the topic holds;
- the runbook's one step reached the stand-in exactly once per incident;
- every page was delivered or dead-lettered with a reason, and no receiver got one page twice.

Each scenario writes its row to `<results>/<scenario>.json`; `tests/chaos/report.py` prints the table and
writes it into docs/operations/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.conftest import ROOT, TOKEN, Ingest, Stack, wait_until

FULL = os.environ.get("FIREBREAK_CHAOS_FULL") == "1"
RESULTS = Path(os.environ.get("FIREBREAK_CHAOS_RESULTS", ROOT / ".firebreak" / "chaos"))


@dataclass
class Row:
    """One line of the table in docs/operations/reliability.md."""

    fault: str
    command: str
    sent: int = 0
    accepted: int = 0
    accounted: int = 0
    lost: int = 0
    duplicated: int = 0  # alerts in two incidents plus extra incidents for one key
    readmodel_missing: int = 0
    steps_run_twice: int = 0
    steps_missing: int = 0
    pages_lost: int = 0
    pages_received_twice: int = 0
    pages_dead_lettered: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def save(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = self.command.rsplit("::", 1)[-1]
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        (RESULTS / f"{name}.json").write_text(
            json.dumps({**asdict(self), "full": FULL, "at": time.time(), "commit": commit}, indent=1)
        )

    def assert_clean(self) -> None:
        # The generator retries 429, 503 and refused connections for 2 minutes after its end: an alert it
        # gave up on means Firebreak did not recover from the fault.
        assert self.accepted == self.sent, self.describe()
        assert self.lost == 0 and self.duplicated == 0, self.describe()
        assert self.readmodel_missing == 0, self.describe()
        assert self.steps_run_twice == 0 and self.steps_missing == 0, self.describe()
        assert self.pages_lost == 0 and self.pages_received_twice == 0, self.describe()

    def describe(self) -> str:
        return json.dumps(asdict(self), indent=1)


class Load:
    """bench/loadgen.py as a process."""

    def __init__(self, ingest: Ingest, folder: Path, run: str, rate: float, seconds: float, **options: object) -> None:
        self.out = folder / f"load-{run}-{uuid.uuid4().hex[:6]}.json"
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
            str(seconds),
            "--out",
            str(self.out),
        ]
        for name, value in options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(
            command,
            env={**os.environ, "FIREBREAK_LOAD_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=(folder / "loadgen.err").open("ab"),
        )

    def result(self, timeout: float = 300) -> dict:
        self.process.wait(timeout=timeout)
        assert self.process.returncode == 0, ROOT / "loadgen.err"
        return json.loads(self.out.read_text())


def records(stack: Stack, topic: str) -> list[dict]:
    """Every item on `topic` as a dict: a packed record's items one by one, a single-item record as it is."""
    return stack.read_json(topic)


def of_run(labels: dict | None, run: str) -> bool:
    return bool(labels) and (labels.get("run") == run or labels.get("service", "").startswith(f"{run}-"))


@dataclass
class Truth:
    """What the topics say about one run's alerts."""

    incidents_of: dict[str, set[str]]  # fingerprint -> incident ids it was added to
    opened: Counter[str]  # correlation key -> incidents opened
    incident_ids: set[str]
    suppressed: set[str]
    alerts_per_incident: dict[str, set[str]]
    openings: dict[str, list[str]] = field(default_factory=dict)  # correlation key -> "incident id at time"
    events_written_twice: int = 0  # the same incident event (same id) on the topic twice: applied once


def truth(stack: Stack, run: str) -> Truth:
    incidents_of: dict[str, set[str]] = defaultdict(set)
    alerts_per_incident: dict[str, set[str]] = defaultdict(set)
    opened: Counter[str] = Counter()
    openings: dict[str, list[str]] = {}
    ids: set[str] = set()
    ids_opened: set[str] = set()
    event_ids: set[str] = set()
    rewritten = 0
    for event in records(stack, "incident-events"):
        alert = event.get("alert") or {}
        if not (of_run(alert.get("labels"), run) or of_run(event.get("group_labels"), run)):
            continue
        ids.add(event["incident_id"])
        if event.get("kind") == "opened" and event["incident_id"] not in ids_opened:
            # The same event twice (same incident id: a redelivery after a rebalance) is one incident; the
            # read model and every consumer apply an event once. Two ids for one key are two incidents.
            ids_opened.add(event["incident_id"])
            opened[event["correlation_key"]] += 1
            openings.setdefault(event["correlation_key"], []).append(f"{event['incident_id']} at {event['at'][11:23]}")
        if event.get("event_id") in event_ids:
            rewritten += 1
        event_ids.add(event.get("event_id"))
        if event.get("kind") in ("opened", "alert_added") and alert.get("fingerprint"):
            incidents_of[alert["fingerprint"]].add(event["incident_id"])
            alerts_per_incident[event["incident_id"]].add(alert["fingerprint"])
    suppressed = {
        e["alert"]["fingerprint"]
        for e in records(stack, "alert-events")
        if e.get("type") == "alert" and e.get("suppressed_by") and of_run(e["alert"].get("labels"), run)
    }
    return Truth(incidents_of, opened, ids, suppressed, alerts_per_incident, openings, rewritten)


def account(row: Row, accepted: set[str], seen: Truth, stack: Stack | None = None) -> None:
    in_one = {f for f in accepted if len(seen.incidents_of.get(f, ())) == 1}
    in_many = {f for f in accepted if len(seen.incidents_of.get(f, ())) > 1}
    suppressed = (accepted - in_one - in_many) & seen.suppressed
    lost = accepted - in_one - in_many - suppressed
    row.accounted = len(in_one | suppressed)
    row.lost = len(lost)
    twice = {k: n for k, n in seen.opened.items() if n > 1}
    row.duplicated = len(in_many) + sum(n - 1 for n in twice.values())
    if in_many or twice:
        row.notes.append(
            f"duplicated: {len(in_many)} alert(s) in two incidents, keys opened more than once: "
            f"{ {k: seen.openings[k] for k in twice} }"
        )
    if seen.events_written_twice:
        row.notes.append(
            f"{seen.events_written_twice} incident event(s) written twice after a rebalance (same event id; "
            "applied once)"
        )
    if lost and stack is not None:
        row.notes.append(f"lost: {where_lost(stack, lost)}")


def where_lost(stack: Stack, lost: set[str]) -> str:
    """How far the lost alerts got: on `alerts` (ingest wrote them) and on `alert-events` (dedup passed them on)."""
    on_alerts = {r.get("fingerprint") for r in records(stack, "alerts")} & lost
    on_events = {(r.get("alert") or {}).get("fingerprint") for r in records(stack, "alert-events")} & lost
    return (
        f"{len(lost)} alert(s): {len(on_alerts)} on `alerts`, {len(on_events)} on `alert-events`, "
        f"none on `incident-events`; e.g. {sorted(lost)[:3]}"
    )


def settle(stack: Stack, run: str, accepted: set[str], timeout: float) -> Truth:
    """Wait until the topics account for every accepted alert (or the timeout passes); the last view."""
    seen = truth(stack, run)

    def done() -> bool:
        nonlocal seen
        seen = truth(stack, run)
        return all(f in seen.incidents_of or f in seen.suppressed for f in accepted)

    try:
        wait_until(
            done,
            timeout,
            "the pipeline to account for every accepted alert",
            interval=2 if len(accepted) < 10_000 else 6,
        )
    except AssertionError:
        pass  # the ledger reports what is missing
    return seen


def read_model_missing(ingest: Ingest, seen: Truth, timeout: float) -> int:
    """Alerts (and whole incidents, counted by their alerts) the topic has and the API does not."""
    missing = 0

    def compare() -> bool:
        nonlocal missing
        missing = 0
        for incident_id, fingerprints in seen.alerts_per_incident.items():
            response = ingest.get(f"/api/v1/incidents/{incident_id}")
            held = set(response.json().get("alerts", {})) if response.status_code == 200 else set()
            missing += len(fingerprints - held)
        return missing == 0

    try:
        wait_until(compare, timeout, "the read model to hold every incident on the topic", interval=2)
    except AssertionError:
        pass
    return missing


def receipts(log: Path, prefix: str) -> list[dict]:
    if not log.exists():
        return []
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["path"].startswith(prefix)]


def check_steps(row: Row, log: Path, incident_ids: set[str], path: str, timeout: float) -> None:
    """The runbook step `path/<incident id>` reached the stand-in exactly once per incident."""

    def counts() -> Counter[str]:
        return Counter(r["path"].rsplit("/", 1)[-1] for r in receipts(log, path))

    try:
        wait_until(lambda: set(counts()) >= incident_ids, timeout, "each incident's runbook step", interval=1)
    except AssertionError:
        pass
    seen = counts()
    row.steps_run_twice = sum(n - 1 for i, n in seen.items() if i in incident_ids and n > 1)
    row.steps_missing = len(incident_ids - set(seen))


def check_pages(row: Row, stack: Stack, log: Path, incident_ids: set[str], path: str, timeout: float) -> None:
    """Every incident's page was delivered (and received) or dead-lettered; no page was received twice."""

    def outcomes() -> dict[str, set[str]]:
        found: dict[str, set[str]] = defaultdict(set)
        for d in records(stack, "notifications"):
            if d.get("kind") == "page" and d.get("incident_id") in incident_ids:
                found[d["incident_id"]].add(d["status"])
        return found

    def terminal() -> bool:
        return all(outcomes().get(i, set()) & {"delivered", "dead_lettered"} for i in incident_ids)

    try:
        wait_until(terminal, timeout, "a delivered or dead-lettered page per incident", interval=1)
    except AssertionError:
        pass
    final = outcomes()
    got = [r for r in receipts(log, path) if r["headers"].get("Idempotency-Key", "").split("/")[0] in incident_ids]
    received = {i for i in incident_ids if any(i in json.dumps(r["body"]) for r in got)}
    row.pages_dead_lettered = sum(1 for i in incident_ids if "dead_lettered" in final.get(i, set()))
    row.pages_lost = sum(
        1
        for i in incident_ids
        if not ("delivered" in final.get(i, set()) and i in received) and "dead_lettered" not in final.get(i, set())
    )
    keys = Counter(r["headers"]["Idempotency-Key"] for r in got)
    row.pages_received_twice = sum(n - 1 for n in keys.values() if n > 1)  # pages and updates alike
