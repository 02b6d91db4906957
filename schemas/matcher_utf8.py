"""Alertmanager's UTF-8 matchers parser (prometheus/alertmanager `matcher/parse/`), ported rule for rule.

Grammar: an optional `{`, matchers separated by commas (a trailing comma allowed), and `}` if and only if the input
opened with `{`. A matcher is a name, an operator (`=`, `!=`, `=~`, `!~`) and a value; a name or value is either a run of
characters other than whitespace and `{}!=~,\\"'` + "`" or a double-quoted Go string literal (escapes as Go's
strconv.Unquote). Errors carry Alertmanager's text, with its `column:column` positions (columns count characters).
This is one half of the default parser; `schemas.matchers.parse_matchers` combines it with the classic one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from schemas.matcher_text import MatcherError, go_unquote, is_reserved, is_space

Triple = tuple[str, str, str]
"""(name, operator, value) as written in the input, before the regex is compiled."""


class Kind(Enum):
    EOF = "EOF"
    OPEN = "{"
    CLOSE = "}"
    COMMA = ","
    OP = "operator"
    QUOTED = "quoted"
    UNQUOTED = "unquoted"


@dataclass(frozen=True)
class Token:
    kind: Kind
    value: str
    start: int  # column (character index) where the token starts
    end: int  # column after its last character


def parse_utf8(text: str) -> list[Triple]:
    """Parse zero or more matchers as `matcher/parse.Matchers`; raises MatcherError with Alertmanager's message."""
    return _Parser(_lex(text)).parse()


def parse_utf8_one(text: str) -> list[Triple]:
    """Exactly one matcher, as `matcher/parse.Matcher`; raises MatcherError ("no matchers", "expected 1 matcher, ...")."""
    found = parse_utf8(text)
    if len(found) != 1:
        raise MatcherError("no matchers" if not found else f"expected 1 matcher, found {len(found)}")
    return found


def _lex(text: str) -> list[Token | MatcherError]:
    """All tokens, ending with an EOF token, or with the lexer's error where the input leaves the grammar."""
    out: list[Token | MatcherError] = []
    i = 0
    while i < len(text):
        char = text[i]
        if is_space(char):
            i += 1
            continue
        found = _scan(text, i)
        out.append(found)
        if isinstance(found, MatcherError):
            return out
        i = found.end
    out.append(Token(Kind.EOF, "", len(text), len(text)))
    return out


def _scan(text: str, i: int) -> Token | MatcherError:
    char = text[i]
    if char in "{},":
        return Token(Kind(char), char, i, i + 1)
    if char in "=!":
        return _scan_operator(text, i)
    if char == '"':
        return _scan_quoted(text, i)
    if not is_reserved(char):
        end = i
        while end < len(text) and not is_reserved(text[end]):
            end += 1
        return Token(Kind.UNQUOTED, text[i:end], i, end)
    return MatcherError(f"{i}:{i + 1}: {char}: invalid input")


def _scan_operator(text: str, i: int) -> Token | MatcherError:
    pair = text[i : i + 2]
    if pair in ("!=", "!~", "=~"):
        return Token(Kind.OP, pair, i, i + 2)
    if text[i] == "=":
        return Token(Kind.OP, "=", i, i + 1)
    if i + 1 >= len(text):
        return MatcherError(f"{i}:{i + 1}: unexpected end of input, expected one of '=~'")
    return MatcherError(f"{i}:{i + 1}: !: expected one of '=~'")


def _scan_quoted(text: str, i: int) -> Token | MatcherError:
    end, escaped = i + 1, False
    while end < len(text):
        char = text[end]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return Token(Kind.QUOTED, text[i : end + 1], i, end + 1)
        end += 1
    return MatcherError(f'{i}:{end}: {text[i:end]}: missing end "')


class _Parser:
    """matcher/parse/parse.go's state machine (parseOpenBrace ... parseEOF), over the token list."""

    def __init__(self, tokens: list[Token | MatcherError]) -> None:
        self.tokens, self.next, self.consumed_end = tokens, 0, 0
        self.matchers: list[Triple] = []
        self.has_open_brace = False

    def parse(self) -> list[Triple]:
        head = self._peek()
        if _is(head, Kind.EOF):
            self._at_eof()
            return self.matchers
        if isinstance(head, MatcherError):
            raise head
        if head.kind is Kind.OPEN:
            self.has_open_brace = True
            self._take()
            head = self._peek()
            if isinstance(head, MatcherError):
                raise head
        if head.kind in (Kind.CLOSE, Kind.EOF):
            self._close_brace()
        else:
            self._matchers()
        return self.matchers

    def _matchers(self) -> None:
        while True:
            self._matcher()
            after = self._peek()
            if _is(after, Kind.EOF, Kind.CLOSE):
                break
            if not _is(after, Kind.COMMA):
                raise MatcherError(f"{_describe(after)}: expected a comma or close brace")
            self._take()
            after = self._peek()
            if _is(after, Kind.EOF, Kind.CLOSE):
                break
            if not _is(after, Kind.QUOTED, Kind.UNQUOTED):
                raise MatcherError(f"{_describe(after)}: expected a matcher or close brace after comma")
        self._close_brace()

    def _matcher(self) -> None:
        name = self._expect("expected label name", Kind.QUOTED, Kind.UNQUOTED)
        op = self._expect("expected an operator such as '=', '!=', '=~' or '!~'", Kind.OP)
        value = self._expect("expected label value", Kind.QUOTED, Kind.UNQUOTED)
        self.matchers.append((_unquote(name), op.value, _unquote(value)))

    def _close_brace(self) -> None:
        after = self._peek()
        if self.has_open_brace:
            if not _is(after, Kind.CLOSE):
                raise MatcherError(f"0:{self.consumed_end}: {_describe(after)}: expected close brace")
            self._take()
        elif _is(after, Kind.CLOSE):
            self._take()
            raise MatcherError(f"0:{self.consumed_end}: }}: expected opening brace")
        self._at_eof()

    def _at_eof(self) -> None:
        after = self._peek()
        if isinstance(after, MatcherError):
            raise MatcherError(f"{after}: expected end of input")
        if after.kind is not Kind.EOF:
            raise MatcherError(f"{after.start}:{after.end}: {after.value}: expected end of input")

    def _expect(self, wanted: str, *kinds: Kind) -> Token:
        found = self._peek()
        if not _is(found, *kinds):
            raise MatcherError(f"{_describe(found)}: {wanted}")
        return self._take()

    def _peek(self) -> Token | MatcherError:
        return self.tokens[self.next]

    def _take(self) -> Token:
        found = self.tokens[self.next]
        assert isinstance(found, Token)
        self.next += 1
        self.consumed_end = found.end
        return found


def _is(found: Token | MatcherError, *kinds: Kind) -> bool:
    return isinstance(found, Token) and found.kind in kinds


def _describe(found: Token | MatcherError) -> str:
    """How Alertmanager names what it found: the lexer's error, "end of input", or "c1:c2: unexpected <token>"."""
    if isinstance(found, MatcherError):
        return str(found)
    return "end of input" if found.kind is Kind.EOF else f"{found.start}:{found.end}: unexpected {found.value}"


def _unquote(found: Token) -> str:
    if found.kind is not Kind.QUOTED:
        return found.value
    try:
        return go_unquote(found.value)
    except MatcherError as exc:
        raise MatcherError(f"{found.start}:{found.end}: {found.value}: invalid input") from exc
