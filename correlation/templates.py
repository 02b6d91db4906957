"""Sandboxed Jinja2 for incident titles: labels are attacker-controlled, so templates can read, never reach out.

Each template is compiled once when the policies load and rendered once per incident; the output is cut to
a bounded length. Labels are passed as data, never rendered as templates themselves.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from schemas.errors import FirebreakError

MAX_TITLE_CHARS = 200

MAX_OUTPUT_CHARS = 64 * 1024


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus refusal of repetitions and powers whose result would be huge
    (`'x' * 10**9`, `9 ** 9999999`) before they are computed: Jinja's sandbox caps only `range`."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            sizes = [len(x) for x in (left, right) if isinstance(x, (str, bytes, list, tuple))]
            counts = [x for x in (left, right) if isinstance(x, int) and not isinstance(x, bool)]
            if sizes and counts and sizes[0] * max(counts[0], 0) > MAX_OUTPUT_CHARS:
                raise SecurityError("repetition would exceed the output limit")
            if not sizes and len(counts) == 2 and max(abs(counts[0]), abs(counts[1])) > 10**18:
                raise SecurityError("number too large")
            return operator.mul(left, right)
        if operator_name == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponent above {MAX_EXPONENT}")
            return operator.pow(left, right)
        return super().call_binop(context, operator_name, left, right)


MAX_EXPONENT = 64
SANDBOX = BoundedSandbox(undefined=StrictUndefined, autoescape=False)


class TemplateProblem(FirebreakError, ValueError):
    """A template that does not compile."""


@lru_cache(maxsize=512)
def compile_template(source: str, environment: BoundedSandbox = SANDBOX) -> Template:
    """`source` compiled once in `environment` (the default sandbox, or another one such as the URL sandbox);
    raises TemplateProblem naming the template."""
    try:
        return environment.from_string(source)
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
