"""Outbound HTTP for runbooks and notifications: only to allow-listed hosts, checked at every hop.

- The URL's host must be on `actions_allowed_hosts` exactly (after lower-casing, IDNA and dropping a
  trailing dot). Other spellings of an address (`127.1`, `2130706433`, `0x7f000001`, `[::ffff:7f00:1]`) are
  different hosts and are refused. An entry without a port allows ports 80 and 443.
- A host name is resolved here and the connection goes to the address that was checked (no second lookup to
  rebind): addresses that are loopback, private, link-local (169.254.169.254), unique-local, multicast,
  reserved or IPv4-mapped are refused unless `actions_allow_private_addresses` is set. An IP literal on the
  allow-list is trusted as written.
- Redirects are followed by hand, at most `MAX_REDIRECTS`, each target checked like the first URL. A
  redirect to another origin (scheme, host or port: RFC 6454) drops the credentials: `Authorization`,
  `Proxy-Authorization`, `Cookie` and every header the caller names as secret, as browsers' fetch and
  curl do, so an allowed host that redirects elsewhere does not receive a token meant for the first.
- Responses are read up to a size cap; header values with CR or LF are refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from schemas.errors import ActionError, Reason

MAX_REDIRECTS = 3
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class Refused(ActionError, ValueError):
    """An outbound request Firebreak will not make; the message names the host and the fix.
    Reason: refused_by_policy (not retried)."""

    reason = Reason.refused_by_policy


def _normal_host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise Refused(f"host {host!r} is not a valid name") from exc


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped or ip.sixtofour or ip.teredo):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


@dataclass(frozen=True)
class AllowList:
    entries: frozenset[tuple[str, int | None]]
    allow_private: bool = False

    @classmethod
    def parse(cls, entries: list[str], allow_private: bool = False) -> AllowList:
        parsed = set()
        for entry in entries:
            parts = urlsplit("//" + entry.strip())
            if not parts.hostname:
                raise ValueError(f"allowed host {entry!r} is not host or host:port")
            parsed.add((_normal_host(parts.hostname), parts.port))
        return cls(frozenset(parsed), allow_private)

    def check(self, url: str) -> tuple[str, int]:
        """(host, port) of an allowed URL; raises Refused naming the host otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise Refused(f"{parts.scheme or 'no'} scheme: only http and https URLs are allowed")
        if not parts.hostname:
            raise Refused(f"{url!r} has no host")
        if parts.username or parts.password:
            raise Refused("credentials in the URL are not allowed; use a header with a secret")
        host = _normal_host(parts.hostname)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise Refused(f"{url!r}: invalid port") from exc
        if (host, port) not in self.entries and not ((host, None) in self.entries and port in (80, 443)):
            raise Refused(
                f"host {host}:{port} is not on the allow-list; add it to FIREBREAK_ACTIONS_ALLOWED_HOSTS "
                "if the runbook should reach it"
            )
        return host, port

    def address_allowed(self, host: str, address: str) -> bool:
        return self.allow_private or _is_ip(host) or _public(address)


class _PinnedResolver(AbstractResolver):
    """Resolves once and returns only addresses the allow-list accepts: the connection uses what was checked."""

    def __init__(self, allow: AllowList) -> None:
        self._allow = allow
        self._inner: ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._allow.address_allowed(_normal_host(host), r["host"])]
        if not allowed:
            shown = ", ".join(sorted({r["host"] for r in found}))
            raise Refused(
                f"host {host} resolves to {shown}: a loopback, private or link-local address; "
                "set FIREBREAK_ACTIONS_ALLOW_PRIVATE_ADDRESSES=true or list the address itself"
            )
        return allowed

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, the port filled in from the scheme: what a redirect must keep
    for credentials to follow it."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), _normal_host(parts.hostname or ""), port or (443 if parts.scheme == "https" else 80)


def without_credentials(headers: dict[str, str], secret_headers: frozenset[str]) -> dict[str, str]:
    """`headers` minus the credential headers and those named in `secret_headers` (names compared case-blind)."""
    drop = CREDENTIAL_HEADERS | {name.lower() for name in secret_headers}
    return {name: value for name, value in headers.items() if name.lower() not in drop}


@dataclass(frozen=True)
class HttpResult:
    status: int
    url: str
    body: str
    truncated: bool
    content_type: str
    retry_after: str | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class OutboundHttp:
    """One pooled client for all outbound requests of a process."""

    def __init__(self, allow: AllowList, max_response_bytes: int = 64 * 1024) -> None:
        self.allow = allow
        self.max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=_PinnedResolver(self.allow), limit=32, use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        timeout: float = 10.0,
        secret_headers: frozenset[str] = frozenset(),
    ) -> HttpResult:
        """Send one request (following checked redirects); raises Refused, or asyncio.TimeoutError / aiohttp errors.

        `secret_headers` names headers that carry secrets: like `Authorization`, they are not sent on after a
        redirect to another origin."""
        headers = dict(headers or {})
        for name, value in headers.items():
            if any(c in text for c in "\r\n\x00" for text in (name, value)):
                raise Refused(f"header {name!r} contains a line break; labels must not reach header values unescaped")
        async with asyncio.timeout(timeout):
            for _ in range(MAX_REDIRECTS + 1):
                self.allow.check(url)
                async with self._client().request(
                    method, url, headers=headers, json=json if data is None else None, data=data, allow_redirects=False
                ) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        target = urljoin(url, response.headers["Location"])
                        if origin(target) != origin(url):
                            headers = without_credentials(headers, secret_headers)
                        url = target
                        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                            method, json, data = "GET", None, None
                        continue
                    raw = await response.content.read(self.max_response_bytes + 1)
                    return HttpResult(
                        status=response.status,
                        url=url,
                        body=raw[: self.max_response_bytes].decode("utf-8", "replace"),
                        truncated=len(raw) > self.max_response_bytes,
                        content_type=response.headers.get("Content-Type", ""),
                        retry_after=response.headers.get("Retry-After"),
                    )
        raise Refused(f"more than {MAX_REDIRECTS} redirects; point the runbook at the final URL")
