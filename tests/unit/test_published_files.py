"""Checked-in artefacts generated from code must match the code (the generated docs pages: test_reference_docs.py)."""

import re
from pathlib import Path

from schemas.export import render_all

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_json_schemas_are_current():
    stale = [name for name, text in render_all().items() if (ROOT / "schemas/json" / name).read_text() != text]
    assert not stale, f"stale JSON Schemas {stale}: run `firebreak schemas export`"


def _yaml_block_after(heading: str, page: str = "docs/concepts/correlation.md") -> str:
    text = (ROOT / page).read_text()
    section = text[text.index(heading) :]
    return section[section.index("```yaml") + len("```yaml") : section.index("```", section.index("```yaml") + 7)]


def test_the_documented_policy_example_loads(tmp_path):
    from adapters.yamlfile import load_yaml_model
    from correlation.policy import PolicySet

    path = tmp_path / "correlation.yaml"
    path.write_text(_yaml_block_after("## Correlation policies"))
    policies = load_yaml_model(path, PolicySet)
    assert [p.name for p in policies.policies] == ["databases", "service-graph"] and policies.inhibit_rules


def test_the_documented_catalog_example_and_the_shipped_files_load(tmp_path):
    from adapters.yamlfile import load_yaml_model
    from correlation.policy import PolicySet
    from correlation.topology import Topology

    path = tmp_path / "services.yaml"
    path.write_text(_yaml_block_after("## Service catalog"))
    with __import__("pytest").raises(Exception, match="does not list"):
        load_yaml_model(path, Topology)  # the excerpt names services it does not list, and says so
    assert load_yaml_model(ROOT / "config/correlation.yaml", PolicySet).policies
    assert load_yaml_model(ROOT / "examples/services.yaml", Topology).services


def test_the_shipped_catalog_is_the_generators_world():
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples/storm.py"),
            "--hours",
            "0.01",
            "--failures",
            "0",
            "--transients",
            "0",
            "--flappers",
            "0",
            "--catalog-out",
            "/dev/stdout",
            "--out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == (ROOT / "examples/services.yaml").read_text(), (
        "regenerate: python examples/storm.py --catalog-out examples/services.yaml"
    )


def test_the_readme_stays_a_quick_start_and_links_only_to_pages_that_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 12_000, "README.md is for the quick start; reference belongs in docs/"
    links = re.findall(r"\]\((docs/[^)#]+)", text)
    assert links and all((ROOT / link).is_file() for link in links), [
        link for link in links if not (ROOT / link).is_file()
    ]


def test_the_image_copies_every_package_the_project_ships():
    """deploy/Dockerfile installs with `pip install .`: a package pyproject lists but the image does not copy
    is missing from the image, and its process fails at import."""
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    missing = [p for p in packages if f"COPY {p} ./{p}" not in dockerfile]
    assert not missing, f"deploy/Dockerfile does not COPY {missing}"
