"""Sandboxed rendering for runbooks: labels are attacker-controlled, so templates can read data, nothing more.

- `ImmutableSandboxedEnvironment` with `StrictUndefined`: no attribute walks to Python internals, no
  mutation of the context, and a missing name is an error rather than an empty string.
- A label value is only ever data in the context; its text is never compiled as a template, and a rendered
  result is never rendered again.
- Output is bounded: string and list repetition (`'x' * 10**9`) and huge powers are refused before they are
  computed, and every rendered string is capped at `MAX_OUTPUT_CHARS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from jinja2 import Environment, Template, TemplateError, meta, nodes
from jinja2.sandbox import SecurityError

from correlation.templates import MAX_OUTPUT_CHARS, SANDBOX, TemplateProblem
from correlation.templates import compile_template as _compile
from schemas.errors import ActionError, Reason


class RenderError(ActionError, ValueError):
    """A template that does not compile or does not render; the message says which and why.
    Reason: render (not retried: the same labels render the same way)."""

    reason = Reason.render


ENV = SANDBOX


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def compile_template(source: str) -> Template:
    try:
        return _compile(source)
    except TemplateProblem as exc:
        raise RenderError(f"template does not compile: {exc.__cause__}") from exc


@lru_cache(maxsize=1024)
def _compile_expression(source: str) -> Any:
    try:
        return ENV.compile_expression(source, undefined_to_none=False)
    except TemplateError as exc:
        raise RenderError(f"expression does not compile: {exc}") from exc


@contextmanager
def explained(what: str) -> Iterator[None]:
    """Turn whatever a sandboxed template raises into a RenderError that says what went wrong."""
    try:
        yield
    except RenderError:
        raise
    except SecurityError as exc:
        raise RenderError(f"refused by the sandbox: {exc}") from exc
    except TemplateError as exc:
        raise RenderError(f"{what}: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise RenderError(f"{what}: {type(exc).__name__}: {exc}") from exc


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render once; raises RenderError naming the problem (a missing label, a sandbox refusal, a size cap)."""
    if not is_template(source):
        return source
    with explained("does not render"):
        return check_size(compile_template(source).render(**context))


def check_size(text: str) -> str:
    """The rendered text, or RenderError when it is longer than MAX_OUTPUT_CHARS."""
    if len(text) > MAX_OUTPUT_CHARS:
        raise RenderError(f"renders to {len(text)} characters, more than {MAX_OUTPUT_CHARS}")
    return text


def render_data(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON-like value (dict keys stay literal)."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [render_data(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_data(v, context) for k, v in value.items()}
    return value


def evaluate(expression: str, context: Mapping[str, Any]) -> bool:
    """A `when` condition's truth; raises RenderError when it cannot be evaluated."""
    with explained("cannot be evaluated"):
        return bool(_compile_expression(expression)(**context))


def parse_problem(source: str, expression: bool = False) -> str | None:
    """Why a template (or expression) does not compile, or None."""
    try:
        if expression:
            _compile_expression(source)
        elif is_template(source):
            compile_template(source)
    except RenderError as exc:
        return str(exc)
    return None


def names_used(source: str, expression: bool = False, env: Environment = ENV) -> set[str]:
    """Top-level names a template reads (`incident`, `params`, `steps`, ...); `env` knows its filters."""
    try:
        tree = env.parse("{{ " + source + " }}" if expression else source)
    except TemplateError:
        return set()
    return set(meta.find_undeclared_variables(tree))


def steps_referenced(source: str, expression: bool = False) -> set[str]:
    """Step ids a template reads through `steps.<id>` or `steps['<id>']`."""
    try:
        tree = ENV.parse("{{ " + source + " }}" if expression else source)
    except TemplateError:
        return set()
    found: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if isinstance(target, nodes.Name) and target.name == "steps":
            if isinstance(node, nodes.Getattr):
                found.add(node.attr)
            elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                found.add(node.arg.value)
    return found


def params_referenced(source: str, expression: bool = False) -> set[str]:
    """Param names a template reads through `params.<name>`. Raises jinja2's TemplateSyntaxError for a template
    that does not parse (callers check `parse_problem` first)."""
    tree = ENV.parse("{{ " + source + " }}" if expression else source)
    return {n.attr for n in tree.find_all(nodes.Getattr) if isinstance(n.node, nodes.Name) and n.node.name == "params"}
