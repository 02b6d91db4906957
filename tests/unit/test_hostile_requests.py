"""No request crashes a handler: hostile headers, query strings and path values get a 4xx naming the
parameter, anything unexpected becomes a JSON 500, and every status is counted by route template."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.links import Links
from adapters.metrics import INGEST
from adapters.readmodel import IncidentStore
from adapters.silence_store import SilenceStore
from firebreak.settings import Settings
from ingest.auth import SignedSources
from ingest.server import create_app

ADMIN = {"Authorization": "Bearer admin-token"}


class NoKafka:
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def _app(**settings: object) -> web.Application:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # not reached: every request here is refused first
    return create_app(
        Settings(ingest_tokens="admin:root:admin-token,ingest:am:ingest-token", **settings),  # type: ignore[arg-type]
        NoKafka(),
        IncidentStore(client, "t:"),
        SilenceStore(client, "t:"),  # type: ignore[arg-type]
        Links("http://127.0.0.1", [b"link-key"], 3600),
    )


def _serve(app: web.Application, check: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(app)) as http:
            await check(http)

    asyncio.run(main())


async def _raw(http: TestClient, head: bytes, body: bytes = b"") -> tuple[int, dict[str, object]]:
    """Send a request byte for byte (non-UTF-8 header values cannot be sent through a client library)."""
    reader, writer = await asyncio.open_connection(http.server.host, http.server.port)
    writer.write(head + b"Host: t\r\nConnection: close\r\n\r\n" + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2] or b"null")


def _count(route: str, code: int) -> float:
    return INGEST.get_sample_value("firebreak_ingest_requests_total", {"route": route, "code": str(code)}) or 0.0


def test_header_values_that_are_not_ascii_get_401_naming_the_header(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FIREBREAK_SECRET_HOOK_KEY", "hook-key")

    async def check(http: TestClient) -> None:
        stamp = str(int(time.time())).encode()
        for head, named in [
            (b"GET /api/v1/incidents HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n", "Authorization"),
            (b"GET /api/v1/incidents HTTP/1.1\r\nAuthorization: Bearer t\xc3\xa9\r\n", "Authorization"),
            (
                b"POST /api/v1/alerts HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                b"X-Firebreak-Signature: sha256=\xc3\xa9\r\nX-Firebreak-Timestamp: " + stamp + b"\r\n",
                "X-Firebreak-Signature",
            ),
            (
                b"POST /api/v1/alerts HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                b"X-Firebreak-Signature: sha256=" + b"0" * 64 + b"\r\nX-Firebreak-Timestamp: nan\r\n",
                "X-Firebreak-Timestamp",
            ),
        ]:
            status, body = await _raw(http, head, b"{}" if head.startswith(b"POST") else b"")
            assert status == 401 and named in body["message"], (head, status, body)  # type: ignore[index]

    _serve(_app(ingest_hmac_secrets="HOOK_KEY"), check)


def test_a_signed_timestamp_is_whole_seconds_so_the_dot_after_it_separates():
    # With a fractional timestamp, ("123.5", b"{...}") and ("123", b"5.{...}") would sign the same text.
    sources = SignedSources({"HOOK_KEY": [b"hook-key"]})
    now = time.time()
    stamp = f"{int(now)}.5"
    with pytest.raises(Exception, match="whole number"):
        sources.verify(SignedSources.sign(b"hook-key", stamp, b"{}"), stamp, b"{}", now=now)


def test_query_and_path_values_that_are_not_clean_text_get_400_naming_the_parameter():
    async def check(http: TestClient) -> None:
        for path, named in [
            ("/api/v1/audit?limit=%C2%B2", "limit"),
            ("/api/v1/audit?limit=-1", "limit"),
            ("/api/v1/incidents?limit=%D9%A1", "limit"),
            ("/api/v1/incidents?status=%00", "status"),
            ("/api/v1/runs?status=nonsense", "status"),
            ("/api/v1/incidents/a%00b", "incident_id"),
            ("/api/v1/incidents/" + "x" * 300, "incident_id"),
            ("/l/ack/inc-1?by=" + "b" * 4000, "by"),
        ]:
            answer = await http.get(path, headers=ADMIN)
            body = await answer.json()
            assert answer.status == 400 and body["error"] == "bad_parameter" and repr(named) in body["message"], (
                path,
                body,
            )

    _serve(_app(), check)


def test_a_non_ascii_link_signature_gets_the_refusal_page_not_a_500():
    async def check(http: TestClient) -> None:
        for method in ("GET", "POST"):
            page = await http.request(method, "/l/ack/inc-1?by=alice&exp=9999999999&sig=%C3%A9%C3%A9")
            assert page.status == 403 and "sig must be 64 hex digits" in await page.text()

    _serve(_app(), check)


def test_every_failure_is_a_json_error_and_every_status_is_counted_by_route_template():
    app = _app(max_request_bytes=1024)

    async def boom(request: web.Request) -> web.Response:
        raise KeyError("a bug in a handler")

    app.router.add_get("/api/v1/boom/{thing}", boom)

    async def check(http: TestClient) -> None:
        cases = [
            ("GET", "/api/v1/incidents", {}, None, 401, "/api/v1/incidents"),
            ("GET", "/api/v1/incidents", {"Authorization": "Bearer ingest-token"}, None, 403, "/api/v1/incidents"),
            ("GET", "/api/v1/no-such-route/12345", ADMIN, None, 404, "unmatched"),
            ("PUT", "/api/v1/incidents", ADMIN, None, 405, "unmatched"),
            (
                "POST",
                "/api/v1/alerts",
                {**ADMIN, "Content-Type": "application/json"},
                b"[" * 2048,
                413,
                "/api/v1/alerts",
            ),
            ("GET", "/api/v1/boom/12345", ADMIN, None, 500, "/api/v1/boom/{thing}"),
        ]
        for method, path, headers, data, status, route in cases:
            before = _count(route, status)
            answer = await http.request(method, path, headers=headers, data=data)
            body = await answer.json()
            assert answer.status == status and body["error"] and body["message"], (method, path, answer.status, body)
            assert _count(route, status) == before + 1, (route, status)
        crashed = await http.get("/api/v1/boom/1", headers=ADMIN)
        assert "a bug in a handler" not in await crashed.text()  # no traceback or exception text to the client

    _serve(app, check)


def test_printable_escapes_control_characters_and_caps_the_length():
    from ingest.params import printable

    assert printable("ana\r\nFAKE ENTRY\x1b[31m", 200) == "ana\\x0d\\x0aFAKE ENTRY\\x1b[31m"
    assert printable("\u202egnp.exe", 200) == "\\u202egnp.exe"
    capped = printable("x" * 16384, 200)
    assert capped.startswith("x" * 200) and capped.endswith("(+16184 chars)") and len(capped) < 220
