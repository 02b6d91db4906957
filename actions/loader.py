"""Loading runbooks (`*.yaml` in a folder, or one file) and the notifications file."""

from __future__ import annotations

from pathlib import Path

from adapters.yamlfile import ConfigFileError, load_yaml_model
from schemas.notification import NotificationsFile
from schemas.runbook import Runbook


def runbook_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if path.is_file():
        return [path]
    raise ConfigFileError(f"{path}: no such file or folder; point FIREBREAK_RUNBOOKS_DIR at the runbooks")


def load_runbooks(path: Path | None) -> list[Runbook]:
    """Every runbook under `path`, validated; raises ConfigFileError listing every problem as file:line."""
    if path is None:
        return []
    problems: list[str] = []
    runbooks: dict[str, tuple[Path, Runbook]] = {}
    for file in runbook_files(path):
        try:
            runbook = load_yaml_model(file, Runbook)
        except ConfigFileError as exc:
            problems.append(str(exc))
            continue
        if runbook.name in runbooks:
            problems.append(
                f"{file}:1: name: {runbook.name!r} is also the name of {runbooks[runbook.name][0]}; names must be unique"
            )
            continue
        runbooks[runbook.name] = (file, runbook)
    if problems:
        raise ConfigFileError("\n".join(problems))
    return [r for _, r in runbooks.values()]


def load_notifications(path: Path | None) -> NotificationsFile:
    return load_yaml_model(path, NotificationsFile) if path is not None else NotificationsFile()
