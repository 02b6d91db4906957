"""Alertmanager's classic matchers parser (prometheus/alertmanager `pkg/labels/parse.go`), ported rule for rule.

A leading `{` and a trailing `}` are each optional and trimmed once; the rest is split at commas outside double quotes
(`\\"` does not open or close a quote); a trailing comma is dropped. Each piece is a classic label name
(`[a-zA-Z_:][a-zA-Z0-9_:]*`), an operator and a value that may be double-quoted; in the value `\\"`, `\\n` and `\\\\`
are escapes and any other backslash is literal. This is the other half of the default parser
(`schemas.matchers.parse_matchers`): Alertmanager falls back to it where the UTF-8 parser refuses an input.
"""

from __future__ import annotations

from schemas.matcher_text import MatcherError, is_space
from schemas.regex import compile_go

Triple = tuple[str, str, str]

# pkg/labels/parse.go's pattern; Go's \s is [\t\n\f\r ]. RE2 keeps the lazy value linear in the input's length.
_LINE = compile_go(r"^[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*((?s).*?)[\t\n\f\r ]*$")


def parse_classic(text: str) -> list[Triple]:
    """Parse a comma-separated list of matchers as `labels.ParseMatchers`; raises MatcherError with Alertmanager's text."""
    body = text.removeprefix("{").removesuffix("}")
    return [parse_classic_one(piece) for piece in _split(body)]


def _split(body: str) -> list[str]:
    """The pieces between commas outside quotes; the last piece is trimmed and dropped when blank."""
    pieces: list[str] = []
    piece: list[str] = []
    inside_quotes = escaped = False
    for char in body:
        if char == "," and not inside_quotes:
            pieces.append("".join(piece))
            piece = []
            continue
        if char == '"':
            inside_quotes = inside_quotes if escaped else not inside_quotes
            escaped = False
        elif char == "\\":
            escaped = not escaped
        elif char != ",":
            escaped = False
        piece.append(char)
    last = _go_trim_space("".join(piece))
    return [*pieces, last] if last else pieces


def _go_trim_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and is_space(text[start]):
        start += 1
    while end > start and is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def parse_classic_one(text: str) -> Triple:
    """Parse one matcher as `labels.ParseMatcher`."""
    found = _LINE.search(text)
    if found is None:
        raise MatcherError(f"bad matcher format: {text}")
    name, op, raw = found.group(1), found.group(2), found.group(3)
    return name, op, _unescape(raw)


def _unescape(raw: str) -> str:
    body, expect_trailing_quote = (raw[1:], True) if raw.startswith('"') else (raw, False)
    value: list[str] = []
    escaped = False
    for i, char in enumerate(body):
        if escaped:
            escaped = False
            value.append({"n": "\n", '"': '"', "\\": "\\"}.get(char, "\\" + char))
        elif char == "\\":
            escaped = i < len(body) - 1
            if not escaped:
                value.append("\\")
        elif char == '"':
            if not expect_trailing_quote or i < len(body) - 1:
                raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
            expect_trailing_quote = False
        else:
            value.append(char)
    if expect_trailing_quote:
        raise MatcherError(f"matcher value contains unescaped double quote: {raw}")
    return "".join(value)
