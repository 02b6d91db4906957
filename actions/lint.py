"""`firebreak runbook lint`: everything that can be known about a runbook before an incident needs it.

Errors: schema violations, templates that do not compile, names a template reads that do not exist
(`incident`, `labels`, `event`, `params`, `steps`, and the params and earlier steps the runbook declares),
unknown secrets, hosts and programs off the allow-lists, channels the notifications file lacks, and steps
that can never run (`when` is constant false). Warnings: templated command arguments with no `--` before
them (a value starting with `-` would be read as an option), and templated URL parts (path or query) whose
value is not a param with a `pattern` (labels choose where the request goes on the allowed host).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actions.command import CommandPolicy
from actions.loader import runbook_files
from actions.outbound import AllowList
from actions.steps.registry import kind_of
from actions.templates import ENV, evaluate, is_template, names_used, params_referenced, parse_problem, steps_referenced
from actions.urls import URL_ENV, url_problem
from adapters.secrets import Secrets
from adapters.yamlfile import ConfigFileError, Loader, _line_of, load_yaml_model
from schemas.runbook import Param, Runbook

CONTEXT_NAMES = {"incident", "labels", "event", "params", "steps"}


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    message: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.level}: {self.message}"


@dataclass(frozen=True)
class LintEnv:
    allow: AllowList
    commands: CommandPolicy
    secrets: Secrets
    channels: frozenset[str]


def _templates(value: Any, loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _templates(v, (*loc, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _templates(v, (*loc, i))


def lint_file(path: Path, env: LintEnv) -> list[Finding]:
    try:
        runbook = load_yaml_model(path, Runbook)
    except ConfigFileError as exc:
        return [_finding(line) for line in str(exc).splitlines()]
    root = yaml.compose(path.read_text(), Loader=Loader)
    found: list[Finding] = []

    def add(loc: tuple[Any, ...], message: str, level: str = "error") -> None:
        found.append(Finding(path, _line_of(root, loc), message, level))

    params = set(runbook.params)
    for name, spec in runbook.params.items():
        source = spec.value if isinstance(spec, Param) else spec
        loc = ("params", name) if not isinstance(spec, Param) else ("params", name, "value")
        _check_template(add, loc, source, params - {name}, set(), expression=False)
    if runbook.guardrails is not None:
        _check_template(add, ("guardrails", "target"), runbook.guardrails.target, params, set(), expression=False)
    earlier: set[str] = set()
    for index, step in enumerate(runbook.steps):
        base = ("steps", index)
        kind = kind_of(step)
        raw = step.model_dump(by_alias=True, exclude_none=True, mode="python")
        for loc, text in _templates({k: v for k, v in raw.items() if k not in ("id", "when", "on_failure")}, base):
            is_url = any(loc[-len(end) :] == end for end in kind.url_templates)
            _check_template(add, loc, text, params, earlier, expression=False, is_url=is_url)
        if step.when is not None:
            _check_template(add, (*base, "when"), step.when, params, earlier, expression=True)
            if not names_used(step.when, expression=True) and parse_problem(step.when, expression=True) is None:
                try:
                    constant = evaluate(step.when, {})
                except ValueError:
                    constant = True
                if not constant:
                    add((*base, "when"), f"step {step.id} can never run: its `when` is always false")
        for problem in kind.lint(step, env, runbook.params):
            add((*base, *problem.loc), problem.message, problem.level)
        earlier.add(step.id)
    return found


def _check_template(
    add: Any,
    loc: tuple[Any, ...],
    source: str,
    params: set[str],
    earlier: set[str],
    expression: bool,
    is_url: bool = False,
) -> None:
    if not expression and not is_template(source):
        return
    problem = url_problem(source) if is_url else parse_problem(source, expression)
    if problem:
        add(loc, problem)
        return
    unknown = names_used(source, expression, URL_ENV if is_url else ENV) - CONTEXT_NAMES
    if unknown:
        add(loc, f"unknown name {', '.join(sorted(unknown))}; templates can read {', '.join(sorted(CONTEXT_NAMES))}")
    for ref in sorted(steps_referenced(source, expression) - earlier):
        add(loc, f"reads steps.{ref}, which is not an earlier step: its output never exists here")
    for ref in sorted(params_referenced(source, expression) - params):
        add(loc, f"reads params.{ref}, which the runbook does not declare")


def _finding(line: str) -> Finding:
    path, _, rest = line.partition(":")
    number, _, message = rest.partition(": ")
    return Finding(Path(path), int(number) if number.isdigit() else 1, message or line)


def lint(paths: list[Path], env: LintEnv) -> list[Finding]:
    findings: list[Finding] = []
    names: dict[str, Path] = {}
    for root in paths:
        try:
            files = runbook_files(root)
        except ConfigFileError as exc:
            findings.append(_finding(str(exc)))
            continue
        for file in files:
            results = lint_file(file, env)
            findings.extend(results)
            if not any(f.level == "error" for f in results):
                name = load_yaml_model(file, Runbook).name
                if name in names:
                    findings.append(Finding(file, 1, f"name {name!r} is also used by {names[name]}"))
                names[name] = file
    return findings
