"""deploy/local/demo.sh's page checks, run alone against a recorded stand-in log: a match ends the check
without Python printing a BrokenPipeError (grep -q closing the pipe early did that under "paged level 1")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "local" / "demo.sh"


def run_check(logs: Path, pattern: str) -> subprocess.CompletedProcess[str]:
    """`has_page inc-1 <pattern>` with the demo's own pages_of and has_page, nothing else of the script."""
    script = f"""python={sys.executable}; logs={logs}
eval "$(sed -n '/^pages_of() {{/,/^}}/p' {DEMO})"
eval "$(grep '^has_page()' {DEMO})"
has_page inc-1 '{pattern}'"""
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    page = {"path": "/hooks/pager", "body": {"incident": {"id": "inc-1"}, "kind": "page", "level": 1, "address": "bob"}}
    # Far more than a pipe's buffer, so the writer is still writing when a reader that stops early goes away.
    (tmp_path / "standin-requests.jsonl").write_text((json.dumps(page) + "\n") * 20_000)
    return tmp_path


def test_a_page_found_early_ends_the_check_quietly(logs: Path):
    found = run_check(logs, "^1 bob page")
    assert found.returncode == 0 and found.stderr == ""


def test_a_page_never_sent_is_not_found(logs: Path):
    missing = run_check(logs, "^3 ")
    assert missing.returncode == 1 and missing.stderr == ""
