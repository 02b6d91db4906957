"""Label matchers as Alertmanager writes them: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.

Regexes are anchored (they must match the whole value), as in Alertmanager. A missing label matches as "".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class MatchOp(StrEnum):
    eq = "="
    ne = "!="
    re = "=~"
    nre = "!~"


_MATCHER = re.compile(r'^\s*([^\s=!~"]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$', re.DOTALL)


class MatcherError(ValueError):
    """A matcher that does not parse; the message shows the expected form."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        found = _MATCHER.match(text)
        if not found:
            raise MatcherError(f"{text!r} is not a matcher; write name=\"value\", name!=\"value\", name=~\"re\" or name!~\"re\"")
        name, op, raw = found.groups()
        value = _unquote(raw, text)
        pattern = None
        if op in (MatchOp.re, MatchOp.nre):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise MatcherError(f"{text!r}: invalid regular expression ({exc})") from exc
        return cls(name, MatchOp(op), value, pattern)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op is MatchOp.eq:
            return actual == self.value
        if self.op is MatchOp.ne:
            return actual != self.value
        assert self.pattern is not None
        hit = self.pattern.fullmatch(actual) is not None
        return hit if self.op is MatchOp.re else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{json.dumps(self.value)}"


def _unquote(raw: str, text: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise MatcherError(f"{text!r}: the quoted value is not a valid string ({exc.msg})") from exc
        if not isinstance(value, str):
            raise MatcherError(f"{text!r}: the value must be a string")
        return value
    if '"' in raw:
        raise MatcherError(f"{text!r}: unbalanced quotes in the value")
    return raw


def repeated(names: list[str]) -> list[str]:
    """The names that appear more than once, sorted: for "names must be unique" checks of config files."""
    return sorted({n for n in names if names.count(n) > 1})


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
