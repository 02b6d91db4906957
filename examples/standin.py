"""A stand-in for the systems runbooks and notifications reach: a deploy API and webhook receivers.

    python examples/standin.py --port 8089 [--token TOKEN | --token-file FILE] [--log requests.jsonl]

- `POST /v1/services/<name>/restart` (needs `Authorization: Bearer <token>` when a token is given)
  answers `{"deploy_id": ..., "service": ...}`; `GET /v1/services/<name>/health` answers `{"status": "healthy"}`.
  `--token-file` keeps the token out of the process list (`ps` shows every user a command line).
- `POST /hooks/<name>[/<more>]` accepts any JSON: a chat, paging, PagerDuty- or Opsgenie-style receiver.
- `GET /requests` lists every request received (method, path, headers, JSON body), newest last: a test
  hook on loopback that shows headers as sent. `--log` appends the same to a file only its owner may read
  (0600), with the values of credential headers (`Authorization`, cookies, keys, tokens) masked.
- `POST /control` with `{"path": "/hooks/oncall", "fail": 3, "status": 500, "delay": 0}` makes the next
  `fail` requests to that path answer `status` (after `delay` seconds): for trying retries and timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any

from aiohttp import web

REQUESTS: web.AppKey[list[dict[str, Any]]] = web.AppKey("requests", list)
FAULTS: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("faults", dict)
_deploys = itertools.count(1)
# Header names whose values are credentials; the log keeps a value's scheme word (`Bearer ***`), never the value.
SECRET_HEADER = re.compile(r"auth|token|secret|passw|api[-_]?key|cookie|session", re.IGNORECASE)


def masked(headers: dict[str, str]) -> dict[str, str]:
    """`headers` with each credential-looking value replaced by `***` (after its scheme, e.g. `Bearer ***`)."""

    def mask(value: str) -> str:
        scheme, _, rest = value.partition(" ")
        return f"{scheme} ***" if rest else "***"

    return {name: mask(value) if SECRET_HEADER.search(name) else value for name, value in headers.items()}


def append_private(log: Path, line: str) -> None:
    """Append one line to `log`, created 0600 (and made 0600 if an older run left it readable to others)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def build(token: str | None, log: Path | None) -> web.Application:
    app = web.Application()
    app[REQUESTS] = []
    app[FAULTS] = {}

    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in ("/requests", "/control"):
            return await handler(request)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        entry = {
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": dict(request.headers),
            "body": body,
        }
        app[REQUESTS].append(entry)
        if log is not None:
            append_private(log, json.dumps({**entry, "headers": masked(entry["headers"])}) + "\n")
        fault = app[FAULTS].get(request.path)
        if fault and fault["fail"] > 0:
            fault["fail"] -= 1
            await asyncio.sleep(fault.get("delay", 0))
            headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
            return web.json_response({"error": "injected"}, status=fault.get("status", 500), headers=headers)
        return await handler(request)

    app.middlewares.append(record)

    async def restart(request: web.Request) -> web.Response:
        if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"error": "bad token"}, status=401)
        return web.json_response({"deploy_id": f"d-{next(_deploys)}", "service": request.match_info["name"]})

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy", "service": request.match_info["name"]})

    async def hook(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def requests_seen(request: web.Request) -> web.Response:
        return web.json_response(app[REQUESTS])

    async def control(request: web.Request) -> web.Response:
        spec = await request.json()
        app[FAULTS][spec["path"]] = spec
        return web.json_response({"ok": True})

    app.router.add_post("/v1/services/{name}/restart", restart)
    app.router.add_get("/v1/services/{name}/health", health)
    app.router.add_route("*", "/hooks/{name}", hook)
    app.router.add_route("*", "/hooks/{name}/{tail:.*}", hook)
    app.router.add_route("*", "/slow/{name}", hook)
    app.router.add_get("/requests", requests_seen)
    app.router.add_post("/control", control)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--token", default=None)
    parser.add_argument("--token-file", type=Path, default=None, help="Read the token from this file.")
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file else args.token
    web.run_app(build(token, args.log), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
