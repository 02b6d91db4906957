"""Matcher regexes are RE2 with Go's syntax, and every list of matchers takes Alertmanager's set form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from actions.matching import context, render_params
from actions.templates import RenderError
from correlation.policy import InhibitRule, Policy
from correlation.suppression import silenced_by
from correlation.topology import Topology
from schemas import Silence
from schemas.matchers import Matcher, MatcherError, matches_all, parse_matcher_list, parse_matchers
from schemas.notification import Route
from schemas.runbook import Runbook
from tests.unit.test_runbook_format import incident, runbook

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LONGEST_LABEL_VALUE = 4096


def test_a_catastrophic_regex_against_the_longest_label_value_is_answered_correctly():
    matcher = Matcher.parse('service=~"(a+)+b"')
    assert matcher.matches({"service": "a" * LONGEST_LABEL_VALUE}) is False  # backtracking would never return
    assert matcher.matches({"service": "a" * (LONGEST_LABEL_VALUE - 1) + "b"}) is True


@pytest.mark.parametrize("text", ['service=~"db(?=-prod)"', 'service=~"(?<!x)db"', 'service=~"(a)\\\\1"'])
def test_lookaround_and_backreferences_are_refused_naming_the_matcher(text):
    with pytest.raises(MatcherError, match=r"service=~.*RE2"):
        parse_matchers(text)


@pytest.mark.parametrize("text", ['a=~"\\\\C"', 'a=~"x[\\\\C]"', 'a=~"\\\\Qlit\\\\E\\\\C"'])
def test_a_single_byte_escape_is_refused_as_go_refuses_it(text):
    with pytest.raises(MatcherError, match=r"a=~.*invalid escape sequence: \\C"):
        parse_matchers(text)


@pytest.mark.parametrize("text", ['a=~"\\\\\\\\C"', 'a=~"\\\\Q\\\\C\\\\E"'])  # a literal backslash then C; \C quoted
def test_a_backslash_before_c_that_is_no_escape_is_accepted(text):
    parse_matchers(text)


@pytest.mark.parametrize(
    ("text", "value", "hit"),
    [
        ('n=~"\\\\pL+"', "Ωmega", True),  # Unicode classes
        ('n=~"foo(?i)bar"', "fooBAR", True),  # flags from the middle on
        ('n=~"foo(?i)bar"', "FOObar", False),
        ('n=~"[[:alpha:]]+"', "abc", True),
        ('n=~"\\\\d+"', "٣", False),  # \d is ASCII only, as in Go
        ('n=~"\\\\w+"', "é", False),  # \w too
        ('n=~"a|b"', "ab", False),  # anchored around the whole alternation: ^(?:a|b)$
        ('n=~"foo.bar"', "foo\nbar", False),  # . does not match a newline without (?s)
    ],
)
def test_regexes_follow_go_syntax(text, value, hit):
    assert Matcher.parse(text).matches({"n": value}) is hit


def test_a_set_is_no_longer_read_as_a_label_named_with_a_brace():
    (matcher,) = parse_matchers("{foo!=bar}")
    assert (matcher.name, matcher.value) == ("foo", "bar")
    assert not matcher.matches({"foo": "bar"})


def test_a_list_entry_may_be_a_set_of_matchers():
    found = parse_matcher_list(['{a="b", c=~"d.*"}', "e!=f", 'g=h,"service.name"="checkout"'])
    assert [str(m) for m in found] == ['a="b"', 'c=~"d.*"', 'e!="f"', 'g="h"', 'service.name="checkout"']


def test_a_bad_entry_is_named_by_its_position():
    with pytest.raises(MatcherError, match=r"entry 1: 'a=\"b' is not a matcher"):
        parse_matcher_list(["x=y", 'a="b'])


LABELS = {"a": "b", "c": "dx", "service": "db"}


def test_policies_and_inhibition_rules_take_sets():
    policy = Policy(name="p", group_by=("a",), match=['{a="b", c=~"d.*"}'])
    assert len(policy.match) == 2 and matches_all(policy.match, LABELS)
    rule = InhibitRule(name="r", source_matchers=['a="b",c="dx"'], target_matchers=["{service=db}"])
    assert rule.source_key(LABELS) is not None and rule.target_key(LABELS) is not None


def test_silences_take_sets_and_apply_every_matcher():
    silence = Silence(
        id="s1",
        matchers=['{a="b", c=~"d.*"}'],
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=1),
        created_by="ana",
        comment="maintenance",
    )
    assert silence.matchers == ['a="b"', 'c=~"d.*"']
    assert silenced_by(LABELS, [silence], NOW) == "silence:s1"
    assert silenced_by({**LABELS, "c": "x"}, [silence], NOW) is None


def test_runbook_and_route_conditions_take_sets():
    assert runbook(match={"matchers": ['{service="db", a=~"b|c"}']}).match.matchers == ['service="db"', 'a=~"b|c"']
    assert Route(matchers=["service=db,a=b"]).matchers == ['service="db"', 'a="b"']


def test_runbook_param_patterns_are_re2():
    with pytest.raises(ValidationError, match=r"params.dir.Param.pattern\n.*RE2"):
        runbook(params={"dir": {"value": "/var/log", "pattern": "/var/log/(?!.*[.][.]).+"}})
    rb: Runbook = runbook(params={"svc": {"value": "{{ labels.service }}", "pattern": "(a+)+b"}})
    ctx = context(incident({"alertname": "A", "service": "a" * LONGEST_LABEL_VALUE}), Topology(), "service")
    with pytest.raises(RenderError, match="does not match the pattern"):
        render_params(rb, ctx)
