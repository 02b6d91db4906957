"""Real services for integration tests: Kafka and Redis from deploy/local/stack.sh, Firebreak as processes.

The session starts a fresh stack on free loopback ports in a temporary folder (Kafka jars are cached by
Maven between runs) and stops exactly those processes at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
STACK_SCRIPT = ROOT / "deploy/local/stack.sh"
FIREBREAK = str(Path(sys.executable).parent / "firebreak")  # the console script of this environment
TOKEN = "integration-test-token"
PACKED_ITEMS = {
    "alert_batch": "alerts",
    "group_input_batch": "items",
    "incident_event_batch": "events",
}  # schemas/batch.py
KAFKA_SASL_PASSWORD = "kafka-sasl-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class Stack:
    bootstrap: str
    redis_url: str
    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    sasl_bootstrap: str = ""  # the same broker behind SASL/PLAIN (user firebreak, KAFKA_SASL_PASSWORD)
    script_env: dict[str, str] = field(default_factory=dict)  # what deploy/local/stack.sh was started with

    def service(self, action: str, name: str) -> None:
        """Stop or start Kafka or Redis (`stack.sh stop|start kafka|redis`), keeping its data."""
        subprocess.run(
            [str(STACK_SCRIPT), action, name], env=self.script_env, check=True, timeout=300, capture_output=True
        )

    def end_offsets(self, topic: str) -> int:
        """How many records the topic holds, summed over partitions."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            return sum(consumer.end_offsets([TopicPartition(topic, p) for p in partitions]).values())
        finally:
            consumer.close()

    def lag(self, topic: str, group: str = "firebreak") -> int:
        """Records on `topic` the consumer group has not committed yet (all of them if it never committed).

        Reads committed offsets without subscribing, so the group is not joined or disturbed.
        """
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
        try:
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
            ends = consumer.end_offsets(partitions)
            return sum(end - (consumer.committed(tp) or 0) for tp, end in ends.items())
        finally:
            consumer.close()

    def read_topic(self, topic: str) -> list[bytes]:
        """Every record value on the topic, from the beginning to the current end."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, consumer_timeout_ms=2000)
        try:
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            ends = consumer.end_offsets(partitions)
            values: list[bytes] = []
            while any(consumer.position(tp) < ends[tp] for tp in partitions):
                for records in consumer.poll(timeout_ms=1000).values():
                    values.extend(r.value for r in records)
            return values
        finally:
            consumer.close()

    def read_json(self, topic: str) -> list[dict]:
        """The topic's JSON-object items: a packed record's items one by one (schemas/batch.py), a single-item
        record as it is. Other modules put poison records (not JSON, empty) on the shared topics on purpose;
        they are not any reader's business here."""
        found = []
        for value in self.read_topic(topic):
            try:
                record = json.loads(value) if value else None
            except ValueError:
                continue
            if isinstance(record, dict):
                items = PACKED_ITEMS.get(record.get("type"))
                found.extend(record[items] if items else [record])
        return found


@contextmanager
def launch_stack(folder: Path) -> Iterator[Stack]:
    """A fresh Kafka and Redis on free loopback ports with their data in `folder`, and Firebreak's topics."""
    kafka_port, redis_port, sasl_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    env.update(
        FIREBREAK_STACK_DIR=str(folder),
        FIREBREAK_KAFKA_PORT=str(kafka_port),
        FIREBREAK_KAFKA_CONTROLLER_PORT=str(free_port()),
        FIREBREAK_KAFKA_SASL_PORT=str(sasl_port),
        FIREBREAK_KAFKA_SASL_PASSWORD=KAFKA_SASL_PASSWORD,
        FIREBREAK_REDIS_PORT=str(redis_port),
        PYTHON=sys.executable,
    )
    subprocess.run([str(STACK_SCRIPT), "up"], env=env, check=True, timeout=600)
    try:
        s = Stack(
            f"127.0.0.1:{kafka_port}",
            f"redis://127.0.0.1:{redis_port}/0",
            folder,
            sasl_bootstrap=f"127.0.0.1:{sasl_port}",
            script_env=env,
        )
        s.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")},
            "FIREBREAK_KAFKA_BOOTSTRAP": s.bootstrap,
            "FIREBREAK_REDIS_URL": s.redis_url,
            "FIREBREAK_INGEST_TOKENS": TOKEN,
            "FIREBREAK_TOPIC_PARTITIONS": "4",
            "FIREBREAK_LOG_LEVEL": "info",
            # The processes run this checkout's code, whichever checkout the environment's package points at.
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        }
        subprocess.run([FIREBREAK, "topics", "create"], env=s.env, check=True, timeout=60, capture_output=True)
        yield s
    finally:
        subprocess.run([str(STACK_SCRIPT), "down"], env=env, check=False, timeout=120)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with launch_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s


@dataclass
class Process:
    """A Firebreak process (`firebreak ingest` / `firebreak worker`) with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            self.popen.wait(timeout=60)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_process(stack: Stack, command: str, log: Path, **env: str) -> Process:
    full_env = {**stack.env, **env}
    handle = log.open("ab")
    popen = subprocess.Popen([FIREBREAK, command], env=full_env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    return Process(command, popen, log)


@dataclass
class Ingest:
    url: str
    process: Process

    def post(
        self, path: str, body: bytes | str, token: str | None = TOKEN, content_type: str = "application/json"
    ) -> requests.Response:
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.post(self.url + path, data=body, headers=headers, timeout=30)

    def get(self, path: str, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(self.url + path, headers=headers, timeout=30)


def start_ingest(stack: Stack, log: Path, **env: str) -> Ingest:
    port = free_port()
    process = start_process(stack, "ingest", log, FIREBREAK_INGEST_PORT=str(port), **env)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.popen.poll() is None, f"ingest exited:\n{process.tail()}"
        try:
            return requests.get(url + "/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(answers, 30, "ingest to answer /healthz")
    return Ingest(url, process)


def worker_counts(
    metrics_port: int, metric: str = "firebreak_alerts_processed_total", label: str = "outcome"
) -> dict[str, int]:
    """A worker's counter by label value (empty until its metrics endpoint answers)."""
    try:
        text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    except requests.ConnectionError:
        return {}
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            value = line.split(f'{label}="')[1].split('"')[0]
            counts[value] = counts.get(value, 0) + int(float(line.rsplit(" ", 1)[1]))
    return counts


def start_worker(stack: Stack, name: str, **env: str) -> tuple[Process, int]:
    port = free_port()
    worker = start_process(
        stack, "worker", stack.folder / f"{name}.log", FIREBREAK_WORKER_METRICS_PORT=str(port), **env
    )
    return worker, port


def start_ready_worker(stack: Stack, name: str, **env: str) -> tuple[Process, int]:
    """A worker whose metrics endpoint answers (it has started), with that port."""
    process, port = start_worker(stack, name, **env)
    wait_until(
        lambda: (
            bool(worker_counts(port, "firebreak_build_info", "version") or worker_counts(port))
            or process.popen.poll() is not None
        ),
        60,
        "the worker's metrics endpoint",
    )
    assert process.popen.poll() is None, process.tail()
    return process, port


@pytest.fixture(scope="session")
def ingest(stack: Stack) -> Iterator[Ingest]:
    server = start_ingest(stack, stack.folder / "ingest.log")
    wait_until(lambda: server.get("/readyz").status_code == 200, 30, "ingest to reach Kafka (/readyz)")
    yield server
    server.process.stop()


class Standin:
    """examples/standin.py as a process: the deploy API and webhook receivers runbooks and pages reach."""

    def __init__(
        self,
        stack: Stack,
        log_name: str,
        token: str | None = None,
        port: int | None = None,
        requests_log: Path | None = None,
    ) -> None:
        port = port or free_port()
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        command = [sys.executable, str(ROOT / "examples/standin.py"), "--port", str(port)]
        if requests_log is not None:  # survives a restart, unlike GET /requests
            command += ["--log", str(requests_log)]
        self.process = subprocess.Popen(
            [*command, *(["--token", token] if token else [])],
            stdout=(stack.folder / log_name).open("ab"),
            stderr=subprocess.STDOUT,
        )

        def answers() -> bool:
            try:
                return requests.get(self.base + "/requests", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(answers, 20, "the stand-in API")

    def requests(self, path: str | None = None, incident_id: str | None = None) -> list[dict]:
        """Requests received at `path` (or below it), optionally those mentioning an incident."""
        seen = requests.get(self.base + "/requests", timeout=5).json()
        if path is not None:
            seen = [r for r in seen if r["path"] == path or r["path"].startswith(path + "/")]
        if incident_id is not None:
            import json

            seen = [r for r in seen if incident_id in json.dumps(r["body"]) or incident_id in r["path"]]
        return seen

    def control(self, **spec: object) -> None:
        """Make the next requests to a path fail or stall (see examples/standin.py)."""
        requests.post(self.base + "/control", json=spec, timeout=5).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
