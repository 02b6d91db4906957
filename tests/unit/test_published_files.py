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


def test_the_wheel_and_the_image_ship_every_package():
    """`pip install .` (the image's install) ships what [tool.setuptools.packages.find] includes: every folder
    of Python code under the layers must match it, or a subpackage (schemas/steps, actions/channels, ...) is
    missing at import; and deploy/Dockerfile must COPY each layer's folder before installing."""
    import tomllib

    from setuptools import find_packages

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    layers = [pattern.rstrip("*") for pattern in find["include"]]
    packages = sorted(
        ".".join(init.parent.relative_to(ROOT).parts)
        for layer in layers
        for init in (ROOT / layer).rglob("__init__.py")
    )
    shipped = set(find_packages(where=str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    unshipped = [p for p in packages if p not in shipped]
    assert not unshipped, f"pyproject's packages.find leaves out {unshipped}"
    no_init = [
        str(folder.relative_to(ROOT))
        for layer in layers
        for folder in [ROOT / layer, *(ROOT / layer).rglob("*")]
        if folder.is_dir() and any(folder.glob("*.py")) and not (folder / "__init__.py").exists()
    ]
    assert not no_init, f"folders of Python code without __init__.py are left out of the wheel: {no_init}"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    missing = [layer for layer in layers if f"COPY {layer} ./{layer}" not in dockerfile]
    assert not missing, f"deploy/Dockerfile does not COPY {missing}"
