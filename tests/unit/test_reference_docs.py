"""The generated pages of docs/ (firebreak/reference.py) match the code, and every alerting rule links to its page.

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


def test_no_alert_page_is_left_over_from_a_removed_rule():
    assert reference.orphans(ROOT) == [], "run `firebreak docs generate` (it deletes them)"


def test_every_alerting_rule_links_to_its_page_on_the_site():
    base = reference.site_url(ROOT)
    rules = reference.alert_rules(ROOT)
    assert len(rules) >= 8
    for rule in rules:
        url = rule.get("annotations", {}).get("runbook_url", "")
        assert url == reference.runbook_url(ROOT, rule["alert"]), f"{rule['alert']}: runbook_url {url!r}"
        page = ROOT / "docs" / (url.removeprefix(base).rstrip("/") + ".md")
        assert page.is_file(), f"{rule['alert']}: {url} has no page {page.relative_to(ROOT)}"
        assert f"# {rule['alert']}\n" in page.read_text()


def test_the_pages_are_reachable_and_every_rule_has_a_what_to_do_section():
    assert reference.problems(ROOT) == []
    sections = reference.what_to_do(ROOT)
    for rule in reference.alert_rules(ROOT):
        assert len(sections.get(rule["alert"], "")) > 200, (
            f"{rule['alert']}: write what to do in {reference.WHAT_TO_DO_FILE}"
        )


def _checkout(tmp_path: Path) -> Path:
    """The files the generator reads and writes besides the code, in a folder of their own."""
    for name in ("mkdocs.yml", reference.RULES_FILE, reference.WHAT_TO_DO_FILE):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    return tmp_path


def test_the_check_names_each_page_that_differs_and_generate_rewrites_it(tmp_path: Path):
    root = _checkout(tmp_path)
    runner = CliRunner()
    page = root / "docs/reference/settings.md"
    page.write_text(page.read_text().replace("SASL user name.", "The SASL user."))
    (root / reference.alert_page_path("FirebreakRetired")).write_text("# FirebreakRetired\n")

    checked = runner.invoke(main, ["docs", "generate", "--check", "--root", str(root)])
    assert checked.exit_code == 1
    assert "docs/reference/settings.md" in checked.output and "FirebreakRetired.md" in checked.output
    assert "docs/reference/metrics.md" not in checked.output
    assert "The SASL user." in page.read_text()  # --check writes nothing

    assert runner.invoke(main, ["docs", "generate", "--root", str(root)]).exit_code == 0
    assert page.read_text() == (ROOT / "docs/reference/settings.md").read_text()
    assert not (root / reference.alert_page_path("FirebreakRetired")).exists()


def test_a_rule_without_its_what_to_do_section_or_runbook_url_is_named(tmp_path: Path):
    root = _checkout(tmp_path)
    rules = root / reference.RULES_FILE
    rules.write_text(
        rules.read_text().replace(
            '          runbook_url: "https://firebreak.example/operations/alerts/FirebreakConsumerLag/"\n', ""
        )
    )
    found = reference.problems(root)
    assert len(found) == 1 and "FirebreakConsumerLag has runbook_url None" in found[0]

    steps = root / reference.WHAT_TO_DO_FILE
    steps.write_text(steps.read_text().replace("## FirebreakConsumerLag", "## FirebreakConsumerLagging"))
    with pytest.raises(reference.DocsError, match="no `## FirebreakConsumerLag` section"):
        reference.alert_page(root, "FirebreakConsumerLag")
    assert any("FirebreakConsumerLagging` is not an alert" in p for p in reference.problems(root))
    failed = CliRunner().invoke(main, ["docs", "generate", "--check", "--root", str(root)])
    assert failed.exit_code == 1 and "FirebreakConsumerLag" in failed.output


def test_the_nav_must_list_every_generated_page(tmp_path: Path):
    root = _checkout(tmp_path)
    config = root / "mkdocs.yml"
    config.write_text(config.read_text().replace("      - Settings: reference/settings.md\n", ""))
    assert reference.problems(root) == [
        "mkdocs.yml: nav does not list reference/settings.md; add it beside the pages of its folder"
    ]


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("a | b", "a \\| b"),
        ("`all|open` or `x`", "<code>all&#124;open</code> or `x`"),
        ("`<a>|b`", "<code>&lt;a&gt;&#124;b</code>"),
        ("FIREBREAK_SECRET_<NAME>, *.yaml and `<code>`", "FIREBREAK_SECRET_&lt;NAME>, \\*.yaml and `<code>`"),
        ("two\nlines", "two lines"),
    ],
)
def test_table_cells_escape_what_would_break_the_table_or_vanish(text: str, cell: str):
    assert reference.md_cell(text) == cell


def test_the_settings_and_metrics_tables_are_printed_by_config_docs_and_metrics():
    runner = CliRunner()
    assert runner.invoke(main, ["config", "docs"]).output == reference.settings_table() + "\n"
    assert runner.invoke(main, ["config", "metrics"]).output == reference.metrics_table() + "\n"
