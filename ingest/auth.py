"""Bearer-token authentication with scopes, compared in constant time against every configured token.

A token entry is `<scope>:<name>:<token>` (scope `ingest`, `operator` or `admin`; the name is what the audit
log records), or a bare token, which is an `admin` named `token-<n>`. Several entries may share a scope, so
tokens rotate by adding the new one before removing the old.

- `ingest`: post alerts and changes (what Alertmanager, Grafana or a CI job holds);
- `operator`: also read everything and act on incidents: ack, resolve, merge, split, silences, approvals;
- `admin`: also the runbook kill switch and the audit log.
"""

from __future__ import annotations

import hmac
import math
import time
from dataclasses import dataclass, field
from enum import IntEnum

from ingest.errors import IngestError
from ingest.params import header_matches


class Scope(IntEnum):
    ingest = 1
    operator = 2
    admin = 3


@dataclass(frozen=True)
class Principal:
    name: str
    scope: Scope


def parse_entries(entries: list[str]) -> list[tuple[bytes, Principal]]:
    parsed = []
    for n, entry in enumerate(entries, start=1):
        scope, _, rest = entry.partition(":")
        if scope in Scope.__members__ and ":" in rest:
            name, _, token = rest.partition(":")
            if not name or not token:
                raise ValueError(f"token entry {n}: write <scope>:<name>:<token>, e.g. ingest:alertmanager:<token>")
            parsed.append((token.encode(), Principal(name, Scope[scope])))
        else:
            parsed.append((entry.encode(), Principal(f"token-{n}", Scope.admin)))
    return parsed


class TokenAuth:
    def __init__(self, entries: list[str]) -> None:
        self._tokens = parse_entries(entries)

    def check(self, authorization: str | None) -> Principal:
        if not authorization:
            raise IngestError(
                401, "unauthenticated", "missing Authorization header; send 'Authorization: Bearer <token>'"
            )
        # RFC 6750: `Bearer <b64token>`, printable ASCII; other bytes would only crash the comparison.
        if not header_matches(authorization, r"(?i:bearer) +[\x21-\x7e]+ *"):
            raise IngestError(
                401,
                "unauthenticated",
                "the Authorization header must be 'Bearer <token>', the token in printable ASCII",
            )
        token = authorization.split(None, 1)[1]
        supplied = token.strip().encode()
        # Compare against all tokens, without stopping at the first match, so timing says nothing.
        found: Principal | None = None
        for known, principal in self._tokens:
            if hmac.compare_digest(supplied, known) and found is None:
                found = principal
        if found is None:
            raise IngestError(401, "unauthenticated", "the bearer token is not valid; check FIREBREAK_INGEST_TOKENS")
        return found


# What each route needs; anything not listed needs admin (a new route is closed until it is placed here).
_INGEST = {("POST", "/api/v1/alerts"), ("POST", "/api/v1/alerts/alertmanager"), ("POST", "/api/v1/changes")}
_ADMIN = {("POST", "/api/v1/runbooks/pause"), ("POST", "/api/v1/runbooks/resume"), ("GET", "/api/v1/audit")}
_OPERATOR_WRITES = {
    ("POST", "/api/v1/incidents/{incident_id}/ack"),
    ("POST", "/api/v1/incidents/{incident_id}/resolve"),
    ("POST", "/api/v1/incidents/{incident_id}/merge"),
    ("POST", "/api/v1/incidents/{incident_id}/split"),
    ("POST", "/api/v1/silences"),
    ("DELETE", "/api/v1/silences/{silence_id}"),
    ("POST", "/api/v1/runs/{run_id}/approve"),
    ("POST", "/api/v1/runs/{run_id}/reject"),
}


def required_scope(method: str, route: str) -> Scope:
    if (method, route) in _INGEST:
        return Scope.ingest
    if (method, route) in _ADMIN:
        return Scope.admin
    if method in ("GET", "HEAD") or (method, route) in _OPERATOR_WRITES:
        return Scope.operator
    return Scope.admin


def audited(method: str, route: str) -> bool:
    """Operator and admin actions that change something: each is written to the audit log."""
    return (method, route) in _OPERATOR_WRITES or ((method, route) in _ADMIN and method != "GET")


@dataclass
class RateLimits:
    """A token bucket per token name: `rate` requests a second, bursts up to twice that (0: no limit).

    Per process: with several ingest replicas each allows the rate, so size it per replica.
    """

    rate: float
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (tokens, updated)

    def wait_for(self, name: str, now: float | None = None) -> float:
        """0 if the request may go ahead (and takes a token), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        capacity = 2 * self.rate
        tokens, updated = self.buckets.get(name, (capacity, now))
        tokens = min(capacity, tokens + (now - updated) * self.rate)
        if tokens >= 1:
            self.buckets[name] = (tokens - 1, now)
            return 0.0
        self.buckets[name] = (tokens, now)
        return (1 - tokens) / self.rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


SIGNATURE_HEADER = "X-Firebreak-Signature"
TIMESTAMP_HEADER = "X-Firebreak-Timestamp"


class SignedSources:
    """Webhook sources that sign their bodies instead of sending a token (GitHub-style).

    The sender sends `X-Firebreak-Timestamp: <unix seconds>` (a whole number) and
    `X-Firebreak-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">` with a key that is the value
    of a secret named in `ingest_hmac_secrets` (one key per line: the first signs, any verifies, so keys rotate).
    The signature is checked over the raw body before anything parses it; a timestamp more than `window`
    seconds off is refused, and so is a signature seen before within the window (a replay). A verified sender
    is the principal `hmac:<secret name>` with scope ingest. A malformed header is refused (401) by name:
    the timestamp is digits only, so the `.` after it is the only separator of the signed text.
    """

    def __init__(self, keys: dict[str, list[bytes]], window: float = 300.0) -> None:
        self.keys = keys
        self.window = window
        self._seen: dict[str, float] = {}

    @staticmethod
    def sign(key: bytes, timestamp: str, body: bytes) -> str:
        return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, "sha256").hexdigest()

    def verify(self, signature: str, timestamp: str, body: bytes, now: float | None = None) -> Principal:
        now = time.time() if now is None else now
        if not header_matches(timestamp, r"[0-9]{1,12}"):
            raise IngestError(401, "bad_signature", f"{TIMESTAMP_HEADER} must be unix seconds, a whole number")
        if not header_matches(signature, r"sha256=[0-9a-f]{64}"):
            raise IngestError(401, "bad_signature", f"{SIGNATURE_HEADER} must be 'sha256=' and 64 lowercase hex digits")
        sent = float(timestamp)
        if abs(now - sent) > self.window:
            raise IngestError(
                401,
                "bad_signature",
                f"{TIMESTAMP_HEADER} is more than {self.window:g} s from now; "
                "check the sender's clock and sign each request afresh",
            )
        match = None
        for name, keys in self.keys.items():
            for key in keys:
                if hmac.compare_digest(self.sign(key, timestamp, body), signature) and match is None:
                    match = name
        if match is None:
            raise IngestError(
                401,
                "bad_signature",
                f"{SIGNATURE_HEADER} does not match the body; sign "
                "'<timestamp>.<body>' with HMAC-SHA256 and a configured key",
            )
        self._seen = {s: t for s, t in self._seen.items() if now - t <= self.window}
        if signature in self._seen:
            raise IngestError(401, "replayed", "this signed request was already accepted; sign each request afresh")
        self._seen[signature] = now
        return Principal(f"hmac:{match}", Scope.ingest)
