"""Load shedding at ingest: when too many requests wait for Kafka, the next gets 429 with Retry-After at
once, and nothing it carried was accepted; once Kafka catches up, requests are accepted again."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from adapters.readmodel import IncidentStore
from adapters.silence_store import SilenceStore
from firebreak.settings import Settings
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
        app = create_app(
            Settings(ingest_tokens="t", ingest_max_inflight=2),
            kafka,  # type: ignore[arg-type]
            IncidentStore(client, "t:"),
            SilenceStore(client, "t:"),
        )
        async with TestClient(TestServer(app)) as http:
            headers = {"Authorization": "Bearer t", "Content-Type": "application/json"}

            def post(n: int):  # type: ignore[no-untyped-def]
                return http.post("/api/v1/alerts", data=json.dumps({"labels": {"alertname": f"A{n}"}}), headers=headers)

            waiting = [asyncio.create_task(post(n)) for n in range(2)]
            await asyncio.sleep(0.2)
            shed = await post(99)
            assert (
                shed.status == 429
                and shed.headers["Retry-After"] == "1"
                and (await shed.json())["error"] == "overloaded"
            )
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
        app = create_app(
            Settings(ingest_tokens="ingest:noisy:t1,ingest:quiet:t2", ingest_rate_per_token=1),
            kafka,  # type: ignore[arg-type]
            IncidentStore(client, "t:"),
            SilenceStore(client, "t:"),
        )
        async with TestClient(TestServer(app)) as http:
            body = json.dumps({"labels": {"alertname": "A"}})

            def post(token: str):  # type: ignore[no-untyped-def]
                return http.post(
                    "/api/v1/alerts",
                    data=body,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )

            statuses = [(await post("t1")).status for _ in range(4)]
            assert statuses[:2] == [202, 202] and 429 in statuses[2:]
            limited = await post("t1")
            assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
            assert (await limited.json())["error"] == "rate_limited"
            assert (await post("t2")).status == 202

    asyncio.run(main())


def test_signed_sources_are_verified_over_the_raw_body_and_cannot_replay(monkeypatch):
    import time as clock

    from ingest.auth import SignedSources

    monkeypatch.setenv("FIREBREAK_SECRET_GRAFANA_KEY", "old-key\nnew-key")

    async def main() -> None:
        kafka = SlowKafka()
        kafka.release.set()
        client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")
        app = create_app(
            Settings(ingest_tokens="t", ingest_hmac_secrets="GRAFANA_KEY"),
            kafka,  # type: ignore[arg-type]
            IncidentStore(client, "t:"),
            SilenceStore(client, "t:"),
        )
        async with TestClient(TestServer(app)) as http:
            body = json.dumps({"labels": {"alertname": "Signed"}}).encode()

            def post(signature: str, stamp: str, data: bytes = body):  # type: ignore[no-untyped-def]
                return http.post(
                    "/api/v1/alerts",
                    data=data,
                    headers={
                        "Content-Type": "application/json",
                        "X-Firebreak-Signature": signature,
                        "X-Firebreak-Timestamp": stamp,
                    },
                )

            now = str(int(clock.time()))
            good = SignedSources.sign(b"new-key", now, body)
            assert (await post(good, now)).status == 202
            replay = await post(good, now)
            assert replay.status == 401 and (await replay.json())["error"] == "replayed"
            tampered = await post(SignedSources.sign(b"new-key", now, body), now, body.replace(b"Signed", b"Forged"))
            assert tampered.status == 401 and (await tampered.json())["error"] == "bad_signature"
            stale = str(int(clock.time()) - 3600)
            assert (await post(SignedSources.sign(b"old-key", stale, body), stale)).status == 401
            rotated = str(int(clock.time()) + 1)
            assert (await post(SignedSources.sign(b"old-key", rotated, body), rotated)).status == 202  # rotation
            other = await post(SignedSources.sign(b"new-key", now, body), now, body)  # same signature as `good`
            assert other.status == 401
            # A signed source has the ingest scope only.
            read = await http.get(
                "/api/v1/incidents",
                headers={
                    "X-Firebreak-Signature": SignedSources.sign(b"new-key", now, b""),
                    "X-Firebreak-Timestamp": now,
                },
            )
            assert read.status == 403

    asyncio.run(main())
