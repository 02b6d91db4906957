"""The chaos suite's own Kafka and Redis (it stops and flushes them, so it shares them with no other test),
its own ingest, two stand-in receivers (the runbook target and the pager, which a test stops and restarts on
the same port), and the runbook and notification files every scenario uses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import (
    Ingest,
    Process,
    Stack,
    Standin,
    free_port,
    launch_stack,
    start_ingest,
    start_ready_worker,
    wait_until,
)

LEVEL_DELAY = 6  # seconds between the two levels of the `two_levels` policy


@pytest.fixture(scope="package")
def chaos_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with launch_stack(tmp_path_factory.mktemp("chaos-stack")) as s:
        yield s


@dataclass
class Chaos:
    stack: Stack
    ingest: Ingest
    fix: Standin  # the runbook's target: /hooks/fix/<incident id>, /hooks/gated/<incident id>
    pager: Standin  # the page receiver: /hooks/page
    folder: Path
    worker_env: dict[str, str]
    workers: list[Process] = field(default_factory=list)

    @property
    def fix_log(self) -> Path:
        return self.folder / "fix-requests.jsonl"

    @property
    def page_log(self) -> Path:
        return self.folder / "page-requests.jsonl"

    def start_worker(self, name: str) -> Process:
        process, _ = start_ready_worker(self.stack, name, **self.worker_env)
        self.workers.append(process)
        return process

    def restart_pager(self) -> None:
        self.pager = Standin(self.stack, "pager.log", port=self.pager.port, requests_log=self.page_log)


@pytest.fixture(scope="package")
def chaos(chaos_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    folder = tmp_path_factory.mktemp("chaos")
    ingest = start_ingest(chaos_stack, folder / "ingest.log")
    wait_until(lambda: ingest.get("/readyz").status_code == 200, 30, "ingest to reach Kafka")
    fix = Standin(chaos_stack, "fix.log", requests_log=folder / "fix-requests.jsonl")
    pager = Standin(chaos_stack, "pager.log", requests_log=folder / "page-requests.jsonl")
    unreachable = free_port()  # nothing listens here: a receiver that never recovers
    (folder / "runbooks").mkdir()
    (folder / "runbooks" / "fix.yaml").write_text(f"""name: fix
description: One call per incident; the chaos ledger counts them.
owner: chaos
on: [opened]
match: {{matchers: ['alertname="LoadTest"']}}
steps:
  - id: call
    http: {{url: "{fix.base}/hooks/fix/{{{{ incident.id }}}}"}}
    timeout: 10s
""")
    (folder / "runbooks" / "gated.yaml").write_text(f"""name: gated
description: A person approves, then one call per incident.
owner: chaos
on: [opened]
match: {{matchers: ['alertname="Gated"']}}
steps:
  - id: ask
    approval: {{prompt: "go ahead?", timeout: 30m}}
  - id: act
    http: {{url: "{fix.base}/hooks/gated/{{{{ incident.id }}}}"}}
    timeout: 10s
""")
    notifications = folder / "notifications.yaml"
    notifications.write_text(f"""channels:
  pager: {{type: webhook, url: "{pager.base}/hooks/page", rate_per_minute: 60000}}
  void: {{type: webhook, url: "http://127.0.0.1:{unreachable}/hooks/void", rate_per_minute: 60000}}
escalation_policies:
  chaos: {{levels: [{{targets: [{{channel: pager}}]}}]}}
  void: {{levels: [{{targets: [{{channel: void}}]}}]}}
  two_levels: {{levels: [{{targets: [{{channel: pager}}], delay: {LEVEL_DELAY}s}}, {{targets: [{{channel: pager}}]}}]}}
routes:
  - {{matchers: ['alertname="TwoLevels"'], policy: two_levels}}
  - {{matchers: ['alertname="Unreachable"'], policy: void}}
  - {{matchers: ['alertname=~"Gated|Storm"'], policy: null}}
  - {{policy: chaos}}
""")
    env = {
        "FIREBREAK_RUNBOOKS_DIR": str(folder / "runbooks"),
        "FIREBREAK_NOTIFICATIONS_FILE": str(notifications),
        "FIREBREAK_ACTIONS_ALLOWED_HOSTS": f"127.0.0.1:{fix.port},127.0.0.1:{pager.port},127.0.0.1:{unreachable}",
        "FIREBREAK_EXECUTOR_LEASE_SECONDS": "4",
        "FIREBREAK_EXECUTOR_POLL_SECONDS": "0.2",
        "FIREBREAK_PAGER_POLL_SECONDS": "0.2",
        "FIREBREAK_PAGER_LEASE_SECONDS": "4",
        "FIREBREAK_NOTIFY_ATTEMPTS": "8",  # 1+2+4+8+8+8+8 s of backoff: outlasts a receiver down for 30 s
        "FIREBREAK_NOTIFY_BACKOFF_SECONDS": "1",
        "FIREBREAK_NOTIFY_MAX_BACKOFF_SECONDS": "8",
        "FIREBREAK_NOTIFY_TIMEOUT_SECONDS": "3",
        "FIREBREAK_WORKER_SESSION_TIMEOUT_SECONDS": "6",
        "FIREBREAK_TICK_INTERVAL_SECONDS": "0.5",
    }
    state = Chaos(chaos_stack, ingest, fix, pager, folder, env)
    state.start_worker("chaos-worker-1")
    yield state
    for worker in state.workers:
        worker.stop()
    ingest.process.stop()
    fix.stop()
    state.pager.stop()
