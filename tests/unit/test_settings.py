import pytest

from firebreak.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("FIREBREAK_"):
            monkeypatch.delenv(name)


def test_environment_overrides_yaml_which_overrides_defaults(tmp_path, monkeypatch):
    config = tmp_path / "firebreak.yaml"
    config.write_text("topic_partitions: 8\ningest_port: 9000\n")
    monkeypatch.setenv("FIREBREAK_CONFIG", str(config))
    monkeypatch.setenv("FIREBREAK_INGEST_PORT", "9100")
    settings = load_settings()
    assert settings.topic_partitions == 8 and settings.ingest_port == 9100 and settings.redis_prefix == "fb:"


def test_lists_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("FIREBREAK_GROUP_BY", "alertname, cluster")
    monkeypatch.setenv("FIREBREAK_INGEST_TOKENS", "one,two")
    settings = load_settings()
    assert settings.group_by == ["alertname", "cluster"]
    assert [t.get_secret_value() for t in settings.ingest_tokens] == ["one", "two"]


def test_tokens_are_read_from_a_file(tmp_path, monkeypatch):
    (tmp_path / "tokens").write_text("alpha\n\n beta \n")
    monkeypatch.setenv("FIREBREAK_INGEST_TOKENS_FILE", str(tmp_path / "tokens"))
    assert [t.get_secret_value() for t in load_settings().ingest_tokens] == ["alpha", "beta"]


def test_tokens_never_print(monkeypatch):
    monkeypatch.setenv("FIREBREAK_INGEST_TOKENS", "hunter2")
    assert "hunter2" not in load_settings().model_dump_json()


def test_a_token_in_the_yaml_file_is_refused(tmp_path, monkeypatch):
    config = tmp_path / "firebreak.yaml"
    config.write_text("ingest_tokens: [hunter2]\n")
    monkeypatch.setenv("FIREBREAK_CONFIG", str(config))
    with pytest.raises(ConfigError, match="must not be in the YAML"):
        load_settings()


def test_bad_values_name_the_option(monkeypatch):
    monkeypatch.setenv("FIREBREAK_TOPIC_PARTITIONS", "0")
    with pytest.raises(ConfigError, match="topic_partitions"):
        load_settings()


def test_unknown_option_in_yaml_is_an_error(tmp_path, monkeypatch):
    config = tmp_path / "firebreak.yaml"
    config.write_text("topic_partitons: 8\n")
    monkeypatch.setenv("FIREBREAK_CONFIG", str(config))
    with pytest.raises(ConfigError, match="topic_partitons"):
        load_settings()


def test_missing_config_file_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREBREAK_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_a_config_path_that_is_a_directory_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("FIREBREAK_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match=f"FIREBREAK_CONFIG={tmp_path}: is a directory, not a file"):
        load_settings()


def test_log_lines_about_an_incident_carry_its_id_as_a_field():
    import json
    import logging

    from adapters.logs import JsonFormatter, context

    record = logging.LogRecord("firebreak.pager", logging.INFO, __file__, 1, "paged %s\nnext line", ("inc-1",), None)
    for key, value in context(incident_id="inc-1", correlation_key='default:{service="db"}').items():
        setattr(record, key, value)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["incident_id"] == "inc-1" and entry["correlation_key"] == 'default:{service="db"}'
    assert entry["message"] == "paged inc-1\nnext line" and entry["level"] == "info"
