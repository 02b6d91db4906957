"""Label matchers exactly as Alertmanager reads and writes them.

Reading follows Alertmanager's DEFAULT parser as of prometheus/alertmanager@68fb2d5 (`matcher/compat/parse.go`, the
fallback mode used when no `--enable-feature` picks `classic-mode` or `utf8-strict-mode`): the text is read by the
UTF-8 parser (`schemas.matcher_utf8`, a port of `matcher/parse/`) and by the classic parser
(`schemas.matcher_classic`, a port of `pkg/labels/parse.go`); the UTF-8 reading wins unless it fails or the two
disagree, then the classic reading wins; if both fail, the classic parser's error is given. So `"service.name"="x"`,
`{a="b", c=~"d"}`, `a=b,c!=d` and classic inputs such as `foo=bar\\n` all read as Alertmanager reads them.

Writing (`str(Matcher)`) is `pkg/labels/matcher.go` String(): `name="value"` with only `\\`, newline and `"` escaped,
or, when the name holds whitespace or one of `{}!=~,\\"'` + "`", both name and value as Go-quoted strings. Both
parsers, Firebreak's and Alertmanager's, read that text back to the same matcher.

Regexes are RE2 (`schemas.regex`), anchored as Alertmanager anchors: `^(?:regex)$`. A missing label matches as "".
One deliberate difference: a matcher with an empty label name is refused (Alertmanager's parsers accept `""="x"`,
which matches every alert, and only its silences API refuses it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, TypeAlias

from schemas.matcher_classic import Triple, parse_classic, parse_classic_one
from schemas.matcher_text import MatcherError, go_quote, is_reserved, open_metrics_escape
from schemas.matcher_utf8 import parse_utf8, parse_utf8_one
from schemas.regex import RegexError, compile_anchored

if TYPE_CHECKING:
    from re2 import _Regexp

    _Compiled: TypeAlias = "_Regexp[str] | None"
else:
    # At run time the annotation stays `object`: pydantic builds a schema of Matcher from its annotations (a field of
    # correlation/policy.py's models holds matchers), and it has none for a compiled RE2 pattern.
    _Compiled = object

__all__ = [
    "MatchOp",
    "Matcher",
    "MatcherError",
    "format_matchers",
    "matches_all",
    "normalize_matchers",
    "parse_matcher_list",
    "parse_matchers",
    "repeated",
]

_SYNTAX = (
    'write name="value" (operators = != =~ !~), several separated by commas, optionally inside { }; '
    'quote a name with dots or spaces: "service.name"="checkout"'
)


class MatchOp(StrEnum):
    """Alertmanager's MatchType, written as its operator."""

    eq = "="
    ne = "!="
    re = "=~"
    nre = "!~"


@dataclass(frozen=True)
class Matcher:
    """One label matcher (Alertmanager's `labels.Matcher`): `name`, operator `op`, `value` (a regex for =~ and !~).

    Construction compiles the regex with RE2; raises MatcherError naming the matcher if it does not compile (e.g. a
    backreference or lookaround, which RE2 lacks) or if the name is empty.
    """

    name: str
    op: MatchOp
    value: str
    pattern: _Compiled = field(default=None, compare=False, repr=False)  # compiled by __post_init__ for =~ and !~

    def __post_init__(self) -> None:
        object.__setattr__(self, "op", MatchOp(self.op))
        if not self.name:
            raise MatcherError(f"{self}: the label name is empty; name the label the matcher tests")
        if self.op in (MatchOp.re, MatchOp.nre):
            try:
                object.__setattr__(self, "pattern", compile_anchored(self.value))
            except RegexError as exc:
                raise MatcherError(f"{self}: {exc}") from exc

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Exactly one matcher, as Alertmanager's `compat.Matcher` (no braces); raises MatcherError."""
        if text.startswith("{") or text.endswith("}"):
            raise MatcherError(f"{text!r}: unexpected open or close brace; one matcher is written without braces")
        try:
            return _fallback(text, lambda: parse_utf8_one(text), lambda: [parse_classic_one(text)])[0]
        except MatcherError as exc:
            raise MatcherError(f'{text!r} is not a matcher Alertmanager reads ({exc}); write name="value"') from exc

    def matches_value(self, value: str) -> bool:
        """Whether a label value (`""` for a missing label) satisfies this matcher (`labels.Matcher.Matches`)."""
        if self.op is MatchOp.eq:
            return value == self.value
        if self.op is MatchOp.ne:
            return value != self.value
        assert self.pattern is not None  # =~ or !~: __post_init__ compiled it
        hit = self.pattern.search(value) is not None
        return hit if self.op is MatchOp.re else not hit

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this matcher; a missing label matches as ""."""
        return self.matches_value(labels.get(self.name, ""))

    def __str__(self) -> str:
        if any(is_reserved(c) for c in self.name):
            return f"{go_quote(self.name)}{self.op.value}{go_quote(self.value)}"
        return f'{self.name}{self.op.value}"{open_metrics_escape(self.value)}"'


@lru_cache(maxsize=4096)
def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Zero or more matchers from one text (`{a="b", c=~"d"}`, `a=b,c!=d`, `a=b`), as Alertmanager's `compat.Matchers`.

    Raises MatcherError quoting the text, Alertmanager's reason and the syntax to use.
    """
    try:
        return tuple(_fallback(text, lambda: parse_utf8(text), lambda: parse_classic(text)))
    except MatcherError as exc:
        raise MatcherError(f"{text!r} is not a matcher Alertmanager reads ({exc}); {_SYNTAX}") from exc


def parse_matcher_list(entries: Iterable[str | Matcher]) -> tuple[Matcher, ...]:
    """The matchers of a config or API list whose entries are each a matcher or a set (as Alertmanager's `matchers:`).

    Raises MatcherError naming the entry's position (0-based) and text.
    """
    found: list[Matcher] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, Matcher):
            found.append(entry)
            continue
        try:
            found.extend(parse_matchers(str(entry)))
        except MatcherError as exc:
            raise MatcherError(f"entry {index}: {exc}") from exc
    return tuple(found)


def normalize_matchers(entries: Iterable[str | Matcher]) -> list[str]:
    """Each matcher of a list whose entries may be sets, written back one per entry as Alertmanager writes it.

    For config and API models that keep matchers as text; raises MatcherError naming the entry.
    """
    return [str(m) for m in parse_matcher_list(entries)]


def _fallback(text: str, utf8: Callable[[], list[Triple]], classic: Callable[[], list[Triple]]) -> list[Matcher]:
    """matcher/compat/parse.go's FallbackMatchersParser over two readings of `text`."""
    utf8_read, utf8_error = _attempt(utf8)
    classic_read, classic_error = _attempt(classic)
    if utf8_error is not None:
        if classic_error is not None:
            raise classic_error
        return classic_read
    if classic_error is None and utf8_read != classic_read:
        return classic_read
    return utf8_read


def _attempt(read: Callable[[], list[Triple]]) -> tuple[list[Matcher], MatcherError | None]:
    try:
        return [Matcher(name, MatchOp(op), value) for name, op, value in read()], None
    except MatcherError as exc:
        return [], exc


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """A set written as Alertmanager's `Matchers.String()`: `{a="b",c=~"d"}`."""
    return "{" + ",".join(str(m) for m in matchers) + "}"


def repeated(names: list[str]) -> list[str]:
    """The names that appear more than once, sorted: for "names must be unique" checks of config files."""
    return sorted({n for n in names if names.count(n) > 1})


def matches_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    """Whether every matcher holds for `labels` (Alertmanager's `Matchers.Matches`)."""
    return all(m.matches(labels) for m in matchers)
