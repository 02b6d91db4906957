"""Signed ack/resolve links: an unambiguous MAC input, malformed parameters refused by name, and a
confirmation page that cannot be framed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.links import Links
from ingest import links_api
from schemas import IncidentStatus

KEY = b"link-key"


def test_field_tuples_that_collided_under_the_newline_join_now_sign_differently():
    # Under the old encoding both tuples signed the same text, "ack\ninc-1\nalice\n...": a link for one
    # incident and person was valid for another whose id and name split the same characters differently.
    first, second = ("ack", "inc-1\nalice", "bob", 1_000_000), ("ack", "inc-1", "alice\nbob", 1_000_000)
    joined = ["\n".join(str(f) for f in fields) for fields in (first, second)]
    assert joined[0] == joined[1]
    assert Links._sig(KEY, *first) != Links._sig(KEY, *second)
    from adapters.links import mac_input

    assert mac_input(*map(str, first)) != mac_input(*map(str, second))
    links = Links("https://fb.example", [KEY], 60)
    sig = Links._sig(KEY, *first)
    assert links.problem("ack", "inc-1\nalice", "bob", "1000000", sig, now=999_000) is None
    assert "signature" in links.problem("ack", "inc-1", "alice\nbob", "1000000", sig, now=999_000)


def test_links_signed_with_the_old_newline_encoding_are_refused():
    old = hmac.new(KEY, b"ack\ninc-1\nalice\n1000000", hashlib.sha256).hexdigest()
    assert "signature" in Links("https://fb.example", [KEY], 60).problem(
        "ack", "inc-1", "alice", "1000000", old, now=999_000
    )


def test_malformed_exp_and_sig_are_named_not_compared():
    links = Links("https://fb.example", [KEY], 60)
    good = Links._sig(KEY, "ack", "inc-1", "alice", 1_000_000)
    for sig in ("é" * 64, good.upper(), good[:-1], "", "\udcff" * 64):
        assert "sig must be 64 hex digits" in links.problem("ack", "inc-1", "alice", "1000000", sig, now=999_000)
    for exp in ("١٠٠٠٠٠٠", "1e6", "-1", "", "9" * 5000, " 1000000"):
        assert "exp must be unix seconds" in links.problem("ack", "inc-1", "alice", exp, good, now=999_000)


async def _find(incident_id: str) -> object:
    return SimpleNamespace(title="Disk full", status=IncidentStatus.triggered, is_open=True, correlation_key="k")


async def _send(command: object) -> None:
    return None


def test_the_confirmation_page_and_its_refusals_cannot_be_framed():
    links = Links("https://fb.example", [KEY], 3600)

    async def main() -> None:
        app = web.Application()
        links_api.add_routes(app, links, _find, _send)
        async with TestClient(TestServer(app)) as http:
            genuine = links.url("ack", "inc-1", "alice").removeprefix("https://fb.example")
            for path in (genuine, "/l/ack/inc-1?by=alice&exp=1&sig=" + "0" * 64):
                page = await http.get(path)
                assert page.status in (200, 403) and page.content_type == "text/html"
                policy = page.headers["Content-Security-Policy"]
                assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
                assert page.headers["X-Frame-Options"] == "DENY"

    asyncio.run(main())
