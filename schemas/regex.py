"""Regular expressions for user-written patterns: RE2, as Alertmanager's Go `regexp` package.

Every pattern an operator or runbook author writes (matcher regexes, runbook param `pattern`s) is compiled here, with
google-re2, so matching a label value is linear in its length whatever the pattern: `(a+)+b` against 4,096 `a`s takes
microseconds, where a backtracking engine takes longer than the age of the universe. The syntax is Go's
(https://pkg.go.dev/regexp/syntax, the same grammar as RE2's): `\\pL`, `(?i)` anywhere, `[[:alpha:]]`, and `\\d`,
`\\w`, `\\s` ASCII-only. Backreferences and lookaround do not exist in RE2 and are refused with `RegexError`.
"""

from __future__ import annotations

import re2

from schemas.errors import FirebreakError


class RegexError(FirebreakError, ValueError):
    """A pattern RE2 (Go's syntax) refuses; the message quotes RE2's reason."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error is raised to the caller, who names the field; no stderr noise
    return options


_OPTIONS = _options()


def compile_anchored(pattern: str) -> re2._Regexp[str]:
    """Compile `pattern` as Alertmanager's `labels.NewMatcher` does: the text `^(?:` + pattern + `)$`, matched with search.

    Returns an RE2 pattern object (use `.search(value)`); raises RegexError naming RE2's reason.
    """
    return compile_go("^(?:" + pattern + ")$")


def _refuse_what_go_lacks(pattern: str) -> None:
    """RegexError for `\\C` (any single byte): RE2 C++ accepts it, Go's regexp/syntax refuses it as "invalid escape
    sequence", so Alertmanager would refuse the pattern. Text between `\\Q` and `\\E` is literal and skipped."""
    i = 0
    while i < len(pattern) - 1:
        if pattern.startswith("\\Q", i):
            end = pattern.find("\\E", i + 2)
            i = len(pattern) if end < 0 else end + 2
        elif pattern[i] == "\\":
            if pattern[i + 1] == "C":
                raise RegexError(
                    "invalid regular expression (RE2, Go syntax): invalid escape sequence: \\C (Go's "
                    "regexp has no single-byte escape); write . for any one character"
                )
            i += 2
        else:
            i += 1


def compile_go(pattern: str) -> re2._Regexp[str]:
    """Compile `pattern` with RE2 as written; raises RegexError (e.g. for `(?=...)` or `\\1`, which RE2 lacks, or
    `\\C`, which Go's syntax lacks)."""
    _refuse_what_go_lacks(pattern)
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise RegexError(
            f"invalid regular expression (RE2, Go syntax): {reason}; RE2 has no lookaround or "
            "backreferences (https://github.com/google/re2/wiki/Syntax)"
        ) from exc


def full_match(pattern: str, value: str) -> bool:
    """Whether all of `value` matches `pattern` (anchored as Alertmanager anchors); raises RegexError if it does not compile."""
    return compile_anchored(pattern).search(value) is not None
