"""Load shedding at ingest: when too many requests wait for Kafka, the next gets 429 with Retry-After at
once, and nothing it carried was accepted; once Kafka catches up, requests are accepted again."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from firebreak.readmodel import IncidentStore
from firebreak.settings import Settings
from firebreak.silence_store import SilenceStore
from ingest.server import create_app


class SlowKafka:
    """A producer whose acknowledgements the test releases by hand (Kafka itself is tested in integration/)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.accepted: list[str] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send_alerts(self, alerts: list) -> None:
        await self.release.wait()
        self.accepted += [a.fingerprint for a in alerts]


def test_requests_beyond_the_inflight_limit_get_429_and_nothing_is_accepted_from_them():
    async def main() -> None:
        kafka = SlowKafka()
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # never used by these routes
        app = create_app(Settings(ingest_tokens="t", ingest_max_inflight=2), kafka,  # type: ignore[arg-type]
                         IncidentStore(client, "t:"), SilenceStore(client, "t:"))
        async with TestClient(TestServer(app)) as http:
            headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}

            def post(n: int):  # type: ignore[no-untyped-def]
                return http.post("/api/v1/alerts", data=json.dumps({"labels": {"alertname": f"A{n}"}}), headers=headers)

            waiting = [asyncio.create_task(post(n)) for n in range(2)]
            await asyncio.sleep(0.2)
            shed = await post(99)
            assert shed.status == 429 and shed.headers["Retry-After"] == "1" and (await shed.json())["error"] == "overloaded"
            kafka.release.set()
            assert [r.status for r in await asyncio.gather(*waiting)] == [202, 202]
            assert len(kafka.accepted) == 2  # the shed request's alert was never accepted
            again = await post(100)
            assert again.status == 202 and len(kafka.accepted) == 3

    asyncio.run(main())


def test_a_token_over_its_rate_gets_429_and_others_do_not():
    async def main() -> None:
        kafka = SlowKafka()
        kafka.release.set()
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
        app = create_app(Settings(ingest_tokens="ingest:noisy:t1,ingest:quiet:t2", ingest_rate_per_token=1), kafka,  # type: ignore[arg-type]
                         IncidentStore(client, "t:"), SilenceStore(client, "t:"))
        async with TestClient(TestServer(app)) as http:
            body = json.dumps({"labels": {"alertname": "A"}})

            def post(token: str):  # type: ignore[no-untyped-def]
                return http.post("/api/v1/alerts", data=body, headers={"Authorization": f"Bearer {token}",
                                                                       "Content-Type": "application/json"})

            statuses = [(await post("t1")).status for _ in range(4)]
            assert statuses[:2] == [202, 202] and 429 in statuses[2:]
            limited = await post("t1")
            assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
            assert (await limited.json())["error"] == "rate_limited"
            assert (await post("t2")).status == 202

    asyncio.run(main())
