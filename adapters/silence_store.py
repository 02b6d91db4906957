"""Silences in Redis (one hash, id -> JSON), read by every worker and the API.

Each stored silence says how its matchers are written (`matcherSyntax`): 2 is Alertmanager's syntax, which this
release reads and writes (schemas/matchers.py). A silence stored without it was written by an earlier release,
which quoted values as JSON (`"caf\u00e9"`, `"a\tb"`) that Alertmanager's parser reads differently; it is read
the old way and written back in Alertmanager's syntax, so an upgrade leaves every silence matching what it did.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from schemas import Silence
from schemas.matchers import Matcher

SYNTAX = 2
_LEGACY = re.compile(r'^\s*([^\s=!~"]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.DOTALL)  # the earlier release's reader


def legacy_matcher(text: str) -> str:
    """A matcher as the earlier release wrote it (name, operator, JSON-quoted or bare value), in Alertmanager's
    syntax; text it cannot read is returned as it is, for the current parser to judge."""
    found = _LEGACY.match(text)
    if found is None:
        return text
    name, op, raw = found.groups()
    value: Any = raw
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return text
    return str(Matcher(name, op, value)) if isinstance(value, str) else text


def decode(raw: bytes | str) -> Silence:
    """A stored silence, its matchers read by the syntax it was stored with."""
    data = json.loads(raw)
    if data.pop("matcherSyntax", None) != SYNTAX:
        data["matchers"] = [legacy_matcher(m) for m in data.get("matchers", [])]
    return Silence.model_validate(data)


def encode(silence: Silence) -> str:
    return json.dumps({**silence.model_dump(mode="json", by_alias=True), "matcherSyntax": SYNTAX})


class SilenceStore:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._key = f"{prefix}silences"

    async def put(self, silence: Silence) -> None:
        await self._redis.hset(self._key, silence.id, encode(silence))

    async def get(self, silence_id: str) -> Silence | None:
        raw = await self._redis.hget(self._key, silence_id)
        return decode(raw) if raw else None

    async def all(self) -> list[Silence]:
        raws = await self._redis.hvals(self._key)
        return sorted((decode(r) for r in raws), key=lambda s: s.starts_at)

    async def current(self, now: datetime) -> list[Silence]:
        """Silences not yet ended (active now or starting later)."""
        return [s for s in await self.all() if s.ends_at > now]
