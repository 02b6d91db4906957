"""The demo's stand-in API (examples/standin.py) keeps the deploy token out of its request log and the log
private to its owner. Run in-process on an ephemeral port."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import stat
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("standin", ROOT / "examples/standin.py")
assert _spec is not None and _spec.loader is not None
standin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(standin)


def test_the_request_log_masks_credentials_and_only_its_owner_reads_it(tmp_path: Path):
    log = tmp_path / "requests.jsonl"
    log.write_text("")
    log.chmod(0o644)  # left readable by an older run

    async def body() -> None:
        async with TestClient(TestServer(standin.build("deploy-token-123", log))) as client:
            answer = await client.post(
                "/v1/services/web/restart",
                json={"why": "test"},
                headers={
                    "Authorization": "Bearer deploy-token-123",
                    "X-Api-Key": "k3y-456",
                    "Cookie": "session=s3ss",
                    "Idempotency-Key": "run-1/restart",
                },
            )
            assert answer.status == 200

    asyncio.run(body())
    text = log.read_text()
    assert "deploy-token-123" not in text and "k3y-456" not in text and "s3ss" not in text
    headers = json.loads(text.splitlines()[0])["headers"]
    assert headers["Authorization"] == "Bearer ***" and headers["X-Api-Key"] == "***" and headers["Cookie"] == "***"
    assert headers["Idempotency-Key"] == "run-1/restart"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
