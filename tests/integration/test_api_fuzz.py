"""The HTTP API fuzzed from its own OpenAPI document: every documented route gets arbitrary JSON bodies,
path values, query strings and headers (hypothesis): non-ASCII, overlong, control characters, empty.
Whatever arrives, the server answers no 5xx except 503 (the documented "Kafka or Redis unavailable"), every
API error is JSON naming a reason and a message (signed-link pages answer HTML by design), and it keeps
serving. Raw control bytes in a header are not sent: aiohttp's HTTP parser refuses them (400) before the app."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TOKEN, Ingest, Stack, start_ingest, wait_until

pytestmark = pytest.mark.integration

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
# Bodies shaped like the API's own, with wrong or odd values inside.
SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "labels": JSON,
        "annotations": JSON,
        "status": JSON,
        "startsAt": JSON,
        "endsAt": JSON,
        "actor": JSON,
        "comment": JSON,
        "matchers": JSON,
        "duration": JSON,
        "createdBy": JSON,
        "service": JSON,
        "summary": JSON,
        "version": JSON,
        "alerts": st.lists(JSON, max_size=3),
        "kind": JSON,
        "at": JSON,
    },
)
SEGMENT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"), min_size=1, max_size=20)
# Query values: any text (requests percent-encodes it, so control characters and non-ASCII reach the app).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
# Overlong values in ASCII: percent-encoded non-ASCII would pass aiohttp's 8 KB request-line limit, a 400 of its parser.
QUERY_VALUE = st.one_of(
    st.just(""),
    TEXT,
    st.text("abcXYZ019-_", min_size=257, max_size=1500),
    st.sampled_from(["1", "0", "-1", "100000", "\u00b2", "\u0661", "1e3", "nan", "open", "%00", "\x00", "\r\n"]),
)
QUERY = st.dictionaries(
    st.sampled_from(["status", "limit", "all", "incident", "by", "exp", "sig"]), QUERY_VALUE, max_size=2
)
# Header values as bytes on the wire: Latin-1 (requests sends str headers as Latin-1), so 0x80-0xff are
# bytes that are not UTF-8; printable otherwise.
HEADER_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")
HEADER_VALUE = st.one_of(
    st.just(""),
    st.text(HEADER_TEXT, max_size=80),
    st.text(HEADER_TEXT, min_size=1000, max_size=4000),
    st.just("sha256=" + "\u00e9" * 64),
    st.just("sha256=" + "0" * 64),
).map(str.lstrip)  # requests refuses leading blanks
HEADERS = st.fixed_dictionaries(
    {}, optional={"X-Firebreak-Signature": HEADER_VALUE, "X-Firebreak-Timestamp": HEADER_VALUE}
)


@pytest.fixture(scope="module")
def fuzzed(stack: Stack) -> Iterator[Ingest]:
    """An ingest of its own, with its own Redis prefix: a silence or a runbook pause the fuzzer happens to get
    accepted must not reach the other tests' workers."""
    server = start_ingest(
        stack,
        stack.folder / "ingest-fuzz.log",
        FIREBREAK_REDIS_PREFIX=f"fuzz-{uuid.uuid4().hex[:8]}:",
        FIREBREAK_INGEST_HMAC_SECRETS="FUZZ_HOOK",
        FIREBREAK_SECRET_FUZZ_HOOK="fuzz-hook-key",
        FIREBREAK_SECRET_LINK_SIGNING_KEY="fuzz-link-key",
    )
    wait_until(lambda: server.get("/readyz", token=None).status_code == 200, 30, "ingest to reach Kafka")
    yield server
    server.process.stop()


def routes(ingest: Ingest) -> list[tuple[str, str]]:
    spec = requests.get(ingest.url + "/openapi.json", timeout=10).json()
    return [(method.upper(), path) for path, methods in spec["paths"].items() for method in methods]


def test_arbitrary_requests_on_every_documented_route_never_get_a_5xx(fuzzed: Ingest):
    ingest = fuzzed
    failures: list[str] = []
    seen: set[int] = set()
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})

    for method, path in routes(ingest):

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(
            body=st.one_of(JSON, SHAPED),
            values=st.lists(SEGMENT, min_size=3, max_size=3),
            query=QUERY,
            authorization=st.one_of(
                st.just(f"Bearer {TOKEN}"),
                st.just(f"Bearer {TOKEN}"),
                HEADER_VALUE,
                HEADER_VALUE.map(lambda v: "Bearer " + v),
            ),
            headers=HEADERS,
        )
        def check(
            body: object, values: list[str], query: dict[str, str], authorization: str, headers: dict[str, str]
        ) -> None:
            filled = path
            for value in values:
                filled = re.sub(r"\{[^}]+\}", requests.utils.quote(value, safe=""), filled, count=1)
            data = json.dumps(body) if method in ("POST", "PUT", "DELETE") else None
            sent = {**headers, "Authorization": authorization}
            response = session.request(method, ingest.url + filled, params=query, data=data, headers=sent, timeout=30)
            seen.add(response.status_code)
            if response.status_code >= 500 and response.status_code != 503:
                failures.append(
                    f"{method} {filled} {query!r:.200} {sent!r:.200} {data!r:.200} -> {response.status_code}: {response.text[:200]}"
                )
            elif (
                response.status_code >= 400
                and not filled.startswith("/l/")
                and not response.headers.get("Content-Type", "").startswith("application/json")
            ):
                failures.append(
                    f"{method} {filled} {query!r:.200} {sent!r:.200} -> {response.status_code} is not JSON: {response.text[:200]}"
                )
            elif response.status_code >= 400 and response.headers.get("Content-Type", "").startswith(
                "application/json"
            ):
                answer = response.json()
                if not (isinstance(answer, dict) and answer.get("error") and answer.get("message")):
                    failures.append(f"{method} {filled} -> {response.status_code} without error and message: {answer}")

        check()
    assert not failures, "\n".join(failures[:20])
    # The requests reached the handlers: some were accepted, many refused for a reason.
    assert {200, 202} & seen and {400, 404, 409, 415, 422} & seen, seen
    assert requests.get(ingest.url + "/healthz", timeout=5).status_code == 200


def test_a_query_parameter_no_route_takes_is_400_naming_it_on_every_api_route(ingest: Ingest):
    for method, path in routes(ingest):
        if not path.startswith("/api/"):
            continue
        filled = re.sub(r"\{[^}]+\}", "x1", path)
        response = requests.request(
            method, f"{ingest.url}{filled}?colour=blue", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        assert response.status_code == 400, f"{method} {filled}: {response.status_code} {response.text[:200]}"
        assert response.json()["error"] == "bad_parameter"
        assert f"query parameter 'colour' is not one {method} {path} takes" in response.json()["message"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/silences?all=yes", "all"),
        ("/api/v1/problems?limit=-5", "limit"),
        ("/api/v1/incidents/x1/timeline?limit=x", "limit"),
        ("/api/v1/incidents?limit=-5", "limit"),
        ("/api/v1/runs?status=done", "status"),
    ],
)
def test_a_query_value_a_route_does_not_understand_is_400_naming_the_parameter(ingest: Ingest, path: str, name: str):
    response = ingest.get(path)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad_parameter"
    assert f"query parameter {name!r}" in response.json()["message"]


def test_a_method_a_path_does_not_allow_is_405_naming_the_path_and_the_allowed_methods(ingest: Ingest):
    response = ingest.get("/api/v1/alerts?x=1")
    assert response.status_code == 405, response.text
    assert response.json()["message"] == "GET is not allowed on /api/v1/alerts; it allows POST"
