"""Checked-in artefacts generated from code must match the code."""

from pathlib import Path

from firebreak.settings import docs_table
from schemas.export import render_all

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_json_schemas_are_current():
    stale = [name for name, text in render_all().items() if (ROOT / "schemas/json" / name).read_text() != text]
    assert not stale, f"stale JSON Schemas {stale}: run `firebreak schemas export`"


def test_readme_documents_every_option():
    assert docs_table() in (ROOT / "README.md").read_text(), "README's option table is stale: paste `firebreak config docs`"
