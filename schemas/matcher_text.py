"""The text pieces of Alertmanager's matcher syntax: Go's string quoting, the reserved runes, OpenMetrics escaping.

Sources (prometheus/alertmanager): `matcher/parse/lexer.go` (isReserved), `matcher/parse/token.go` (a quoted token is
read with Go's `strconv.Unquote`), `pkg/labels/matcher.go` (String(): `strconv.Quote`, openMetricsEscape). Go's
`strconv` rules are from https://pkg.go.dev/strconv and https://go.dev/ref/spec#String_literals.
"""

from __future__ import annotations

from schemas.errors import FirebreakError


class MatcherError(FirebreakError, ValueError):
    """A matcher (or set of matchers) that does not parse or whose regex does not compile; the message shows the fix."""


# Go's unicode.IsSpace: the Latin-1 spaces and the Unicode White_Space property.
_GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    map(chr, range(0x2000, 0x200B))
)
_RESERVED = frozenset("{}!=~,\\\"'`") | _GO_SPACE
_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, '"': 34}
_QUOTE_ESCAPES = {chr(v): f"\\{k}" for k, v in _SIMPLE_ESCAPES.items()}


def is_space(char: str) -> bool:
    """Go's unicode.IsSpace for one character."""
    return char in _GO_SPACE


def is_reserved(char: str) -> bool:
    """A character that cannot appear in an unquoted name or value (matcher/parse/lexer.go isReserved)."""
    return char in _RESERVED


def go_unquote(token: str) -> str:
    """Decode a double-quoted Go string literal, `token` including its quotes, as `strconv.Unquote` does.

    Escapes: \\a \\b \\f \\n \\r \\t \\v \\\\ \\", \\xHH and \\OOO (bytes), \\uHHHH and \\UHHHHHHHH (code points). The bytes
    must form UTF-8 (matcher/parse/token.go). Raises MatcherError for a bad escape, a raw newline or an inner quote.
    """
    if len(token) < 2 or token[0] != '"' or token[-1] != '"' or "\n" in token:
        raise MatcherError(f"{token} is not a double-quoted string")
    body, out, i = token[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char == '"':
            raise MatcherError(f'{token}: a double quote inside a quoted string must be escaped as \\"')
        if char != "\\":
            out += char.encode("utf-8", "surrogatepass")
            i += 1
            continue
        i = _unescape(body, i + 1, out, token)
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MatcherError(f"{token}: the escaped bytes are not valid UTF-8") from exc


def _unescape(body: str, i: int, out: bytearray, token: str) -> int:
    """Append the escape starting at body[i] (just after the backslash) to out; return the index after it."""
    kind = body[i : i + 1]
    if kind in _SIMPLE_ESCAPES:
        out.append(_SIMPLE_ESCAPES[kind])
        return i + 1
    if kind in ("u", "U"):
        width = 4 if kind == "u" else 8
        code = _number(body[i + 1 : i + 1 + width], width, 16)
        if code < 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise MatcherError(f"{token}: \\{kind} must be followed by {width} hex digits of a valid code point")
        out += chr(code).encode("utf-8")
        return i + 1 + width
    if kind == "x" or (kind and kind in "01234567"):
        digits = body[i + 1 : i + 3] if kind == "x" else body[i : i + 3]
        code = _number(digits, 2, 16) if kind == "x" else _number(digits, 3, 8)
        if not 0 <= code <= 255:
            raise MatcherError(f"{token}: a byte escape is \\x and 2 hex digits or \\ and 3 octal digits up to \\377")
        out.append(code)
        return i + 3
    raise MatcherError(f"{token}: unknown escape \\{kind}; write \\\\ for a backslash")


def _number(digits: str, width: int, base: int) -> int:
    """The value of exactly `width` digits in `base`, or -1."""
    try:
        return int(digits, base) if len(digits) == width and digits.isascii() and digits.isalnum() else -1
    except ValueError:
        return -1


def go_quote(text: str) -> str:
    """Quote `text` as Go's `strconv.Quote`: printable characters as they are, the rest as Go escapes."""
    return '"' + "".join(_quote_char(c) for c in text) + '"'


def _quote_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if char.isprintable():  # Python's and Go's (unicode.IsPrint) printable sets: L, M, N, P, S and ' '
        return char
    if char in _QUOTE_ESCAPES:
        return _QUOTE_ESCAPES[char]
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def open_metrics_escape(text: str) -> str:
    """Escape a value as pkg/labels/matcher.go's openMetricsEscape: only backslash, newline and double quote."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
