"""Rendering a runbook URL: every templated value lands in the URL as exactly one path segment or query value.

Labels are attacker-controlled and reach `http` step URLs through templates. Jinja's own `urlencode` keeps
`/`, and yarl (aiohttp's URL type) resolves `.`, `..`, `%2e%2e` segments before sending (RFC 3986 section
6.2.2), so a label `../../hooks/x` used to walk up the path on the allowed host, secret header and all.
Here, in a URL template only:

- every `{{ ... }}` output is percent-encoded with nothing kept (`quote(value, safe="")`, RFC 3986 section
  2.1): `/`, `?`, `#`, `&`, `=` and `%` inside a value are data, never structure;
- a value that is exactly `.` or `..` is refused: no encoding survives yarl's normalisation;
- `| urlencode` encodes the same way (a string: one segment; a dict or list of pairs: `a=1&b=2`, Jinja's
  form), so an existing `{{ x | urlencode }}` is not encoded twice;
- `| urlpath` is the author's explicit opt-out for a value that is meant to span segments
  (`{{ params.object_key | urlpath }}`): `/` is kept, each part between slashes is encoded as above, and a
  `.` or `..` part is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from jinja2 import StrictUndefined, Template
from jinja2.filters import do_urlencode

from actions.templates import RenderError, check_size, explained, is_template
from correlation.templates import BoundedSandbox, TemplateProblem, compile_template

DOT_SEGMENTS = frozenset({".", ".."})


class _Encoded(str):
    """Text already encoded for a URL by one of the filters below; `_finalize` passes it through."""


def _segment(value: Any) -> str:
    text = str(value)
    if text in DOT_SEGMENTS:
        raise RenderError(
            f"a templated URL part renders to {text!r}, which would walk up the path; "
            "give the value a `pattern` in params that excludes it"
        )
    return quote(text, safe="")


def _finalize(value: Any) -> str:
    return value if isinstance(value, _Encoded) else _segment(value)


def _urlencode(value: Any) -> _Encoded:
    if isinstance(value, (dict, list, tuple)):
        return _Encoded(do_urlencode(value))
    return _Encoded(_segment(value))


def _urlpath(value: Any) -> _Encoded:
    return _Encoded("/".join(_segment(part) for part in str(value).split("/")))


URL_ENV = BoundedSandbox(undefined=StrictUndefined, autoescape=False, finalize=_finalize)
URL_ENV.filters.update(urlencode=_urlencode, urlpath=_urlpath)


def _compile(source: str) -> Template:
    try:
        return compile_template(source, URL_ENV)
    except TemplateProblem as exc:
        raise RenderError(str(exc)) from exc


def render_url(source: str, context: Mapping[str, Any]) -> str:
    """An `http` step's URL rendered once, each templated value encoded as one segment or query value
    (`| urlpath`: several segments); raises RenderError naming the problem (a dot segment, a missing label)."""
    if not is_template(source):
        return source
    with explained("does not render"):
        return check_size(_compile(source).render(**context))


def url_problem(source: str) -> str | None:
    """Why a URL template does not compile (an unknown filter, a syntax error), or None."""
    try:
        _compile(source)
    except RenderError as exc:
        return str(exc)
    return None
