"""The generated pages of docs/ (firebreak/reference.py) match the code.

A failure here means a page is stale: run `firebreak docs generate` and commit the pages it rewrites.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from firebreak import reference
from firebreak.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGES = reference.page_functions(ROOT)


@pytest.mark.parametrize("path", list(PAGES))
def test_the_committed_page_is_what_the_code_generates(path: str):
    committed = ROOT / path
    assert committed.is_file(), f"{path} is missing: run `firebreak docs generate`"
    assert committed.read_text() == PAGES[path](), f"{path} differs from the code: run `firebreak docs generate`"


def _checkout(tmp_path: Path) -> Path:
    """The files the generator reads and writes besides the code, in a folder of their own."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    return tmp_path


def test_the_check_names_each_page_that_differs_and_generate_rewrites_it(tmp_path: Path):
    root = _checkout(tmp_path)
    runner = CliRunner()
    page = root / "docs/reference/settings.md"
    page.write_text(page.read_text().replace("SASL user name.", "The SASL user."))

    checked = runner.invoke(main, ["docs", "generate", "--check", "--root", str(root)])
    assert checked.exit_code == 1
    assert "docs/reference/settings.md" in checked.output
    assert "docs/reference/metrics.md" not in checked.output
    assert "The SASL user." in page.read_text()  # --check writes nothing

    assert runner.invoke(main, ["docs", "generate", "--root", str(root)]).exit_code == 0
    assert page.read_text() == (ROOT / "docs/reference/settings.md").read_text()


def test_the_nav_must_list_every_generated_page(tmp_path: Path):
    root = _checkout(tmp_path)
    config = root / "mkdocs.yml"
    config.write_text(config.read_text().replace("      - Settings: reference/settings.md\n", ""))
    assert reference.problems(root) == ["mkdocs.yml: nav does not list reference/settings.md"]


@pytest.mark.parametrize(("text", "cell"), [
    ("a | b", "a \\| b"),
    ("`all|open` or `x`", "<code>all&#124;open</code> or `x`"),
    ("`<a>|b`", "<code>&lt;a&gt;&#124;b</code>"),
    ("FIREBREAK_SECRET_<NAME>, *.yaml and `<code>`", "FIREBREAK_SECRET_&lt;NAME>, \\*.yaml and `<code>`"),
    ("two\nlines", "two lines"),
])
def test_table_cells_escape_what_would_break_the_table_or_vanish(text: str, cell: str):
    assert reference.md_cell(text) == cell


def test_the_settings_and_metrics_tables_are_printed_by_config_docs_and_metrics():
    runner = CliRunner()
    assert runner.invoke(main, ["config", "docs"]).output == reference.settings_table() + "\n"
    assert runner.invoke(main, ["config", "metrics"]).output == reference.metrics_table() + "\n"
