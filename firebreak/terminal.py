"""Text for the operator's terminal: what senders and users wrote is shown, never obeyed.

Labels, annotations, titles, actors, comments, step outputs and audit entries come from alert senders and
API users. Printed raw, an ESC starts a terminal control sequence (ECMA-48: it can move the cursor, rewrite
earlier lines, set the window title or, on some terminals, answer back as typed input), a CR or LF fakes a
line, and a bidi override (Unicode TR9) reorders what is shown. Every CLI line that holds such text goes
through `echo`, which shows each of these characters as a visible escape: `\\x1b`, `\\n`, `\\u202e`.
"""

from __future__ import annotations

import json
from typing import Any

import click

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Bidi embeddings, overrides, isolates and marks (Unicode TR9), and the line and paragraph separators.
_INVISIBLE = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
# C0 controls, DEL and the C1 controls (U+0080..U+009F: CSI 0x9b starts a sequence on its own on some terminals).
_CONTROLS = (*range(0x20), *range(0x7F, 0xA0))
_TABLE = {
    **{c: _NAMED.get(chr(c), f"\\x{c:02x}") for c in _CONTROLS},
    **{ord(ch): f"\\u{ord(ch):04x}" for ch in _INVISIBLE},
}


def escape(text: object) -> str:
    """`text` as one line that is safe to print: control characters (C0, DEL, C1, so every ESC sequence),
    line breaks and bidi controls replaced by visible escapes such as `\\x1b`; everything else unchanged."""
    return str(text).translate(_TABLE)


def echo(line: object = "", err: bool = False) -> None:
    """Print one line through `escape` (to stderr with `err`); a line break inside `line` is shown, not made."""
    click.echo(escape(line), err=err)


def echo_json(value: Any) -> None:
    """Print `value` as indented JSON for scripts; json's `ensure_ascii` writes every control and non-ASCII
    character as `\\uXXXX`, so the document is safe for a terminal and still valid JSON."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=True))
