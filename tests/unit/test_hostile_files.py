"""Hostile configuration files: Python tags, alias bombs, oversized files, non-UTF-8, traversal in names.
Each is refused with file:line (or the file) and the fix, before anything runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from actions.loader import load_runbooks
from adapters.yamlfile import ConfigFileError, load_yaml_model
from correlation.policy import PolicySet

RUNBOOK = "name: r\ndescription: d\nowner: o\non: [opened]\nsteps:\n  - id: a\n    annotate: {text: x}\n"


def test_python_tags_are_refused_not_executed(tmp_path: Path):
    marker = tmp_path / "pwned"
    (tmp_path / "r.yaml").write_text(
        f"name: !!python/object/apply:os.system ['touch {marker}']\n" + RUNBOOK.split("\n", 1)[1]
    )
    with pytest.raises(ConfigFileError, match=r"r\.yaml:1: invalid YAML"):
        load_runbooks(tmp_path)
    assert not marker.exists()


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    (tmp_path / "policies.yaml").write_text("\n".join(lines) + "\npolicies: *i\n")
    started = time.monotonic()
    with pytest.raises(ConfigFileError, match="aliases are expanded"):
        load_yaml_model(tmp_path / "policies.yaml", PolicySet)
    assert time.monotonic() - started < 2


def test_oversized_and_non_utf8_files_are_refused(tmp_path: Path):
    (tmp_path / "big.yaml").write_text("a: " + "x" * (1024 * 1024 + 10))
    with pytest.raises(ConfigFileError, match="larger than"):
        load_yaml_model(tmp_path / "big.yaml", PolicySet)
    (tmp_path / "latin1.yaml").write_bytes("policies: []\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigFileError, match="not UTF-8"):
        load_yaml_model(tmp_path / "latin1.yaml", PolicySet)


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "UPPER", "x" * 80, "", ".hidden"])
def test_runbook_names_cannot_traverse_or_surprise(tmp_path: Path, name: str):
    (tmp_path / "r.yaml").write_text(RUNBOOK.replace("name: r", f"name: {name!r}"))
    with pytest.raises(ConfigFileError, match=r"r\.yaml:1: name"):
        load_runbooks(tmp_path)
