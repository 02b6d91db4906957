from datetime import timedelta
from pathlib import Path

import pytest

from adapters.yamlfile import ConfigFileError, load_yaml_model
from correlation.policy import PolicySet
from schemas.durations import parse_duration
from schemas.matchers import Matcher, MatcherError


@pytest.mark.parametrize(
    ("text", "labels", "hit"),
    [
        ('service="db"', {"service": "db"}, True),
        ('service="db"', {"service": "db-2"}, False),
        ('service!="db"', {"service": "web"}, True),
        ('service=~"db-.*"', {"service": "db-2"}, True),
        ('service=~"db"', {"service": "db-2"}, False),  # anchored, as in Alertmanager
        ('service!~"db-.*"', {"service": "web"}, True),
        ('team=""', {"service": "x"}, True),  # a missing label matches as empty
        ('msg="say \\"hi\\""', {"msg": 'say "hi"'}, True),
    ],
)
def test_matchers_follow_alertmanager_semantics(text, labels, hit):
    assert Matcher.parse(text).matches(labels) is hit


@pytest.mark.parametrize("text", ["service", 'service=="db"', 'service=~"(unclosed"', 'a="b'])
def test_bad_matchers_are_refused_with_the_expected_form(text):
    with pytest.raises(MatcherError):
        Matcher.parse(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800), (45, 45), ("0", 0)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["soon", "5 minutes", "-1s", True, "1x"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "correlation.yaml"
    path.write_text(text)
    return path


def test_policies_load_in_order_and_the_first_match_wins(tmp_path):
    path = write(
        tmp_path,
        """
policies:
  - name: databases
    match: ['service=~"postgres|redis-.*"']
    group_by: [service]
    group_wait: 30s
  - name: everything-critical
    match: 'severity="critical"'
    group_by: [alertname]
""",
    )
    policies = load_yaml_model(path, PolicySet).with_default(("alertname", "service"))
    assert [p.name for p in policies.policies] == ["databases", "everything-critical", "default"]
    assert policies.select({"service": "postgres", "severity": "critical"}).name == "databases"
    assert policies.select({"service": "web", "severity": "critical"}).name == "everything-critical"
    assert policies.select({"service": "web"}).name == "default"
    assert policies.policies[0].group_wait == timedelta(seconds=30)


def test_policy_errors_name_file_and_line(tmp_path):
    path = write(
        tmp_path,
        """policies:
  - name: ok
    group_by: [service]
  - name: broken
    group_by: [service]
    group_wait: soon
""",
    )
    with pytest.raises(ConfigFileError) as info:
        load_yaml_model(path, PolicySet)
    assert f"{path}:6: policies.1.group_wait:" in str(info.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "policies:\n  - name: [unclosed\n")
    with pytest.raises(ConfigFileError, match=r"correlation.yaml:\d+: invalid YAML"):
        load_yaml_model(path, PolicySet)


def test_python_tags_are_refused(tmp_path):
    path = write(tmp_path, "policies: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigFileError):
        load_yaml_model(path, PolicySet)


def test_a_title_template_that_does_not_compile_is_refused(tmp_path):
    path = write(tmp_path, "policies:\n  - name: p\n    group_by: [a]\n    title: '{{ labels.service '\n")
    with pytest.raises(ConfigFileError, match="does not compile"):
        load_yaml_model(path, PolicySet)


def test_duplicate_policy_names_are_refused(tmp_path):
    path = write(tmp_path, "policies:\n  - {name: p, group_by: [a]}\n  - {name: p, group_by: [b]}\n")
    with pytest.raises(ConfigFileError, match="unique"):
        load_yaml_model(path, PolicySet)
