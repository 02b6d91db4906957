"""Signed, expiring links that acknowledge or resolve an incident from a page, without a bearer token.

`<public_url>/l/<action>/<incident>?by=<who>&exp=<unix time>&sig=<hex>` where `sig` is an HMAC-SHA256 over
action, incident, who and expiry with the `LINK_SIGNING_KEY` secret, each field length-prefixed (see
`mac_input`) so that no two field tuples sign the same bytes. Opening the link shows a confirmation
page; only its POST acts (mail scanners and chat unfurlers fetch links with GET). Several keys may be given,
one per line, for rotation: the first signs, any verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

ACTIONS = ("ack", "resolve")
MAC_VERSION = b"firebreak-link-v2"  # v1 joined the fields with "\n"; its links are not accepted


def mac_input(*fields: str) -> bytes:
    """The bytes a link's HMAC covers: a version tag, then each field as its UTF-8 length (4 bytes, big-endian)
    and its UTF-8 bytes. Length prefixes make the encoding injective (Prometheus's label hashing gets the same
    from a 0xff separator that UTF-8 cannot contain); a joined string let ("a\nb", "c") sign as ("a", "b\nc")."""
    encoded = [f.encode("utf-8", "surrogatepass") for f in fields]
    return MAC_VERSION + b"".join(len(e).to_bytes(4, "big") + e for e in encoded)


class Links:
    def __init__(self, public_url: str, keys: list[bytes], ttl_seconds: float) -> None:
        self.public_url = public_url.rstrip("/")
        self.keys = keys
        self.ttl = ttl_seconds

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    @staticmethod
    def _sig(key: bytes, action: str, incident_id: str, by: str, expires: int) -> str:
        return hmac.new(key, mac_input(action, incident_id, by, str(expires)), hashlib.sha256).hexdigest()

    def url(self, action: str, incident_id: str, by: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + self.ttl)
        query = urlencode({"by": by, "exp": expires, "sig": self._sig(self.keys[0], action, incident_id, by, expires)})
        return f"{self.public_url}/l/{action}/{incident_id}?{query}"

    def for_incident(self, incident_id: str, by: str = "link") -> dict[str, str]:
        if not self.enabled:
            return {}
        return {action: self.url(action, incident_id, by) for action in ACTIONS}

    def problem(
        self, action: str, incident_id: str, by: str, expires: str, sig: str, now: float | None = None
    ) -> str | None:
        """Why this link must not act (None: it is genuine and current). `expires` and `sig` are checked for
        shape first (digits; 64 lowercase hex digits), so no client text reaches the comparison unchecked."""
        if not self.enabled:
            return "signed links are not configured on this server"
        if action not in ACTIONS:
            return f"unknown action {action!r}; links are /l/ack/... or /l/resolve/..."
        if not (expires.isascii() and expires.isdigit() and len(expires) <= 12):
            return "the link is malformed (exp must be unix seconds); copy the whole link from the page"
        if not (sig.isascii() and len(sig) == 64 and all(c in "0123456789abcdef" for c in sig)):
            return "the link is malformed (sig must be 64 hex digits); copy the whole link from the page"
        expiry = int(expires)
        if not any(hmac.compare_digest(self._sig(k, action, incident_id, by, expiry), sig) for k in self.keys):
            return "the link's signature does not match; it was altered or signed with a retired key"
        if expiry < (now or time.time()):
            return "the link has expired; acknowledge with `firebreak incidents ack` or the API"
        return None
