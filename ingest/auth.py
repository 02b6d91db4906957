"""Bearer-token authentication, compared in constant time against every configured token (rotation)."""

from __future__ import annotations

import hmac

from ingest.errors import IngestError


class TokenAuth:
    def __init__(self, tokens: list[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

    def check(self, authorization: str | None) -> None:
        if not authorization:
            raise IngestError(401, "unauthenticated", "missing Authorization header; send 'Authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise IngestError(401, "unauthenticated", "the Authorization header must be 'Bearer <token>'")
        supplied = token.strip().encode()
        # Compare against all tokens, without stopping at the first match, so timing says nothing.
        matched = False
        for known in self._tokens:
            matched |= hmac.compare_digest(supplied, known)
        if not matched:
            raise IngestError(401, "unauthenticated", "the bearer token is not valid; check FIREBREAK_INGEST_TOKENS")
