"""The pytest plugin for rules as code (installed with Firebreak, entry point `pytest11`).

Every `*.firebreak.yaml` file pytest collects is one test: the fixture runs on a virtual clock through the
policies, escalation config and runbooks it names (firebreak/check.py), and fails with each unmet
expectation and what happened instead. A team's repository needs nothing but the fixtures:

    pytest policies/tests/            # or plain `pytest`, when the fixtures are under its testpaths

From a Python test, the `firebreak_check` fixture runs one file and returns the result, for assertions
of one's own (`result.outcome.incidents`, `.pages`, `.runs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from firebreak.check import Result, check
from schemas.errors import FirebreakError

SUFFIX = ".firebreak.yaml"


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name.endswith(SUFFIX):
        return FixtureFile.from_parent(parent, path=file_path)
    return None


class FixtureFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        try:
            name = str((yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}).get("name") or self.path.stem)
        except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
            name = self.path.stem  # the item reports the problem when it runs
        yield FixtureItem.from_parent(self, name=name)


class FixtureFailed(FirebreakError):
    def __init__(self, result: Result) -> None:
        super().__init__(result.problems)
        self.result = result


class FixtureItem(pytest.Item):
    def runtest(self) -> None:
        result = check(self.path)
        if not result.passed:
            raise FixtureFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if not isinstance(excinfo.value, FixtureFailed):
            return str(super().repr_failure(excinfo))
        result = excinfo.value.result
        lines = [f"{self.path}: {result.fixture.name}", *(f"  {p}" for p in result.problems), "what happened:"]
        for n, incident in enumerate(result.outcome.incidents, start=1):
            lines.append(
                f"  incident {n}: {incident.title!r} {incident.status.value}, {incident.alert_count} alerts, "
                f"policy {incident.policy}"
            )
        lines += [
            f"  page: incident {p.incident} level {p.level} via {p.policy} to {', '.join(p.to)} at "
            f"{int(p.at.total_seconds())}s"
            for p in result.outcome.pages
        ]
        lines += [f"  runbook {r.runbook} on incident {r.incident}: {', '.join(r.steps)}" for r in result.outcome.runs]
        return "\n".join(lines)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"firebreak fixture: {self.name}"


@pytest.fixture
def firebreak_check() -> Callable[[Path | str], Result]:
    """Run one fixture file; the result has `.passed`, `.problems` and `.outcome`."""
    return lambda path: check(Path(path))
