"""A broken FIREBREAK_CONFIG file is reported as `file:line: problem; fix` and a non-zero exit, never a
traceback: the CLI runs here with such files (click's CliRunner, no services)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from firebreak.cli import main


def config_show(tmp_path: Path, text: str, **env: str) -> tuple[int, str]:
    path = tmp_path / "firebreak.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["config", "show"], env={"FIREBREAK_CONFIG": str(path), **env})
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "text, line",
    [
        ('redis_url: "redis://127.0.0.1:6379/0\nlog_level: info\n', 3),  # an unterminated quote
        ("redis_url: redis://x\n  kafka_bootstrap: [a\n", 2),  # bad indentation
        ("log_level: info\nlog_level: [debug\n", 3),  # an unclosed flow sequence
    ],
)
def test_a_yaml_syntax_error_names_file_line_and_the_fix(tmp_path: Path, text: str, line: int):
    code, output = config_show(tmp_path, text)
    assert code == 1
    assert output.startswith(f"Error: {tmp_path / 'firebreak.yaml'}:{line}: invalid YAML: ")
    assert output.rstrip().endswith("fix the syntax on or just before that line") and output.count("\n") == 1


def test_a_schema_error_names_the_option_its_line_and_the_fix(tmp_path: Path):
    code, output = config_show(tmp_path, "redis_url: redis://x\n\ningest_port: lots\nkafka_bootsrap: a:9092\n")
    path = tmp_path / "firebreak.yaml"
    assert code == 1
    assert f"{path}:3: ingest_port: Input should be a valid integer" in output and "fix the value in the file" in output
    assert f"{path}:4: kafka_bootsrap: Extra inputs are not permitted; remove it or fix its spelling" in output


def test_an_environment_variable_overriding_a_file_value_is_not_blamed_on_the_file(tmp_path: Path):
    code, output = config_show(tmp_path, "ingest_port: 8080\n", FIREBREAK_INGEST_PORT="lots")
    assert code == 1 and "invalid configuration: ingest_port:" in output and "firebreak.yaml:" not in output


def test_a_file_that_is_not_a_mapping_says_what_it_should_be(tmp_path: Path):
    code, output = config_show(tmp_path, "- redis_url: redis://x\n")
    assert code == 1 and "firebreak.yaml:1: the file must map options to values" in output
