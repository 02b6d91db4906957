"""An in-process HTTP server standing in for the systems runbooks reach: counts requests per path, fails,
stalls or redirects on demand. Used by unit tests (in their own loop) and executor tests over real Redis."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Target:
    """An in-process HTTP server: counts requests per path, fails or stalls on demand."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: dict[str, int] = {}
        self.raw_paths: list[str] = []  # as sent, percent-encoding and all
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.fail: dict[str, list[int]] = {}  # path -> statuses to answer first
        self.redirect: dict[str, str] = {}
        self.stall = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] = self.hits.get(path, 0) + 1
        self.raw_paths.append(request.raw_path)
        self.headers.append(dict(request.headers))
        self.bodies.append(await request.json() if request.can_read_body else None)
        if self.stall:
            await asyncio.sleep(self.stall)
        if path in self.redirect:
            raise web.HTTPFound(self.redirect[path])
        if self.fail.get(path):
            status = self.fail[path].pop(0)
            headers = {"Retry-After": "7"} if status == 429 else {}
            return web.json_response({"error": "injected"}, status=status, headers=headers)
        return web.json_response({"ok": True, "path": path, "auth": request.headers.get("Authorization", "")})

    async def __aenter__(self) -> Target:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"
