"""Sandboxed Jinja2 for incident titles: labels are attacker-controlled, so templates can read, never reach out.

Each template is compiled once when the policies load and rendered once per incident; the output is cut to
a bounded length. Labels are passed as data, never rendered as templates themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_TITLE_CHARS = 200

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateProblem(ValueError):
    """A template that does not compile."""


@lru_cache(maxsize=256)
def compile_template(source: str) -> Template:
    try:
        return _ENV.from_string(source)
    except TemplateError as exc:
        raise TemplateProblem(f"template {source!r} does not compile: {exc}") from exc


def render_title(source: str, context: Mapping[str, Any]) -> str | None:
    """The rendered title, or None when rendering fails (a label the template names is missing, say)."""
    try:
        text = compile_template(source).render(**context)
    except TemplateError:
        return None
    text = " ".join(text.split())
    return text[:MAX_TITLE_CHARS] if text else None
