"""Values a client sends outside the body (path segments, query strings, headers), checked before any use.

aiohttp hands these over as `str`, but not as clean text: a header's bytes that are not UTF-8 arrive as lone
surrogates (`surrogateescape`), a query string's `%00` arrives as NUL, and nothing caps their length. Used
as they come they crash `str.encode()`, `hmac.compare_digest()` and Redis, or carry CR/LF into logs. Each
check here refuses such a value with a 4xx that names the parameter and says what to send instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping

from ingest.errors import IngestError, Problem

MAX_PARAM_CHARS = 256  # a path segment or query value: ids, names, filters; never free text

# Cc: control characters (NUL, CR, LF, ESC); Cf: invisible format characters (bidi overrides);
# Cs: lone surrogates, which is how aiohttp hands over bytes that were not UTF-8; Zl/Zp: line breaks.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def text_problem(value: str, max_chars: int = MAX_PARAM_CHARS) -> str | None:
    """Why `value` is not clean text for an id, name or filter (None: it is)."""
    if len(value) > max_chars:
        return f"is {len(value)} characters long; the limit is {max_chars}"
    if any(unicodedata.category(ch) in _UNPRINTABLE for ch in value):
        return "holds bytes that are not UTF-8 text or control characters; send printable UTF-8, percent-encoded"
    return None


def printable(text: str, max_chars: int) -> str:
    """`text` for a log line or an audit entry: each unprintable character (as in `text_problem`) written as
    `\\xNN` / `\\uNNNN`, then cut to `max_chars` with a note of how much was cut. Always one line."""
    escaped = "".join(_escape(ch) if unicodedata.category(ch) in _UNPRINTABLE else ch for ch in text)
    if len(escaped) <= max_chars:
        return escaped
    return f"{escaped[:max_chars]}...(+{len(escaped) - max_chars} chars)"


def _escape(ch: str) -> str:
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def check_text(where: str, name: str, value: str, max_chars: int = MAX_PARAM_CHARS) -> str:
    """`value` unchanged if it is clean text; else IngestError 400 `bad_parameter` naming `where` and `name`
    (e.g. `query parameter 'by'`)."""
    problem = text_problem(value, max_chars)
    if problem:
        raise IngestError(400, "bad_parameter", f"{where} {name!r} {problem}", [Problem(f"{where}.{name}", problem)])
    return value


def check_request_values(match_info: Mapping[str, str], query: Mapping[str, str]) -> None:
    """Every path parameter and every query parameter (name and value) of a request is clean text."""
    for name, value in match_info.items():
        check_text("path parameter", name, value)
    for name, value in query.items():
        check_text("query parameter", check_text("query parameter", "(name)", name, 64), value)


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """The query parameter `name` as a whole number in [low, high] (`default` when absent);
    anything else is IngestError 400 naming the parameter and the range."""
    text = query.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
        raise IngestError(
            400,
            "bad_parameter",
            f"query parameter {name!r} must be a whole number from {low} to {high}",
            [Problem(f"query parameter.{name}", f"must be {low}..{high}")],
        )
    return int(text)


def choice_param(query: Mapping[str, str], name: str, choices: Iterable[str], default: str | None) -> str | None:
    """The query parameter `name`, which must be one of `choices` (`default` when absent or empty);
    anything else is IngestError 400 listing the choices."""
    text = query.get(name) or default
    allowed = list(choices)
    if text is not None and text not in allowed:
        raise IngestError(
            400,
            "bad_parameter",
            f"query parameter {name!r} must be one of {', '.join(allowed)}",
            [Problem(f"query parameter.{name}", f"one of {', '.join(allowed)}")],
        )
    return text


BOOLEAN_CHOICES = {"1": True, "true": True, "0": False, "false": False}


def bool_param(query: Mapping[str, str], name: str) -> bool:
    """The query parameter `name` as a flag: 1/true or 0/false (false when absent); anything else is
    IngestError 400 naming the parameter and the values it takes."""
    text = choice_param(query, name, BOOLEAN_CHOICES, "false")
    return BOOLEAN_CHOICES[text or "false"]


def known_params(query: Mapping[str, str], known: frozenset[str], route: str) -> None:
    """Every query parameter of a request is one `route` (`GET /api/v1/problems`) takes; an unknown one, which
    would otherwise be ignored without a word, is IngestError 400 naming it and the ones the route takes."""
    for name in query:
        if name not in known:
            takes = ", ".join(sorted(known)) or "none"
            raise IngestError(
                400,
                "bad_parameter",
                f"query parameter {name!r} is not one {route} takes (it takes: {takes}); remove it",
                [Problem(f"query parameter.{name}", f"unknown here; known: {takes}")],
            )


def header_matches(value: str, pattern: str) -> bool:
    """Whether a header value is exactly `pattern` (a regex over ASCII: non-ASCII never matches)."""
    return value.isascii() and re.fullmatch(pattern, value) is not None
