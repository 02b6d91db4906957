"""Alertmanager's own matcher tests, transcribed into tests/data/alertmanager_matchers/, run against Firebreak.

Each data file cites its source file and commit. The UTF-8 parser's cases (matcher/parse/parse_test.go) run against
Firebreak's port of that parser, the classic parser's (pkg/labels/parse_test.go) against its port, the fallback
parser's (matcher/compat/parse_test.go) against the default parser every caller uses; errors must be Alertmanager's
text. Every set case of the first two files is also fed whole to the default parser, which must read it as
Alertmanager's fallback rule would. A case listed with `skip_reason` is one where Firebreak deliberately differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.matcher_classic import parse_classic
from schemas.matcher_utf8 import parse_utf8, parse_utf8_one
from schemas.matchers import Matcher, MatcherError, MatchOp, parse_matchers

DATA = Path(__file__).parents[1] / "data" / "alertmanager_matchers"


def _cases(file: str, *tests: str) -> list[Any]:
    doc = json.loads((DATA / file).read_text(encoding="utf-8"))
    chosen = [c for c in doc["cases"] if c["test"] in tests and "skip_reason" not in c]
    return [pytest.param(c, id=f"{c['test']}:{c.get('name') or c.get('input')!r}") for c in chosen]


def _read(parse: Any, text: str) -> list[list[str]] | str:
    """[name, op, value] of each matcher, built as Alertmanager builds them (regexes compiled), or the error text."""
    try:
        return [[m.name, m.op.value, m.value] for m in (Matcher(n, MatchOp(o), v) for n, o, v in parse(text))]
    except MatcherError as exc:
        return str(exc)


def _expected(case: dict[str, Any]) -> list[list[str]] | str:
    if "error" in case:
        return case["error"]
    return case["matchers"] if "matchers" in case else [case["matcher"]]


@pytest.mark.parametrize("case", _cases("matcher_parse_parse_test.json", "TestMatchers", "TestMatcher"))
def test_utf8_parser_gives_alertmanagers_result(case: dict[str, Any]) -> None:
    parse = parse_utf8 if case["test"] == "TestMatchers" else parse_utf8_one
    assert _read(parse, case["input"]) == _expected(case)


@pytest.mark.parametrize("case", _cases("pkg_labels_parse_test.json", "TestMatchers"))
def test_classic_parser_gives_alertmanagers_result(case: dict[str, Any]) -> None:
    found = _read(parse_classic, case["input"])
    if case.get("error_from") == "regexp":  # Go's regexp and RE2 word the same fault differently
        assert isinstance(found, str) and "missing ]" in found and "invalid regular expression" in found
    else:
        assert found == _expected(case)


@pytest.mark.parametrize(
    "case", _cases("matcher_compat_parse_test.json", "TestFallbackMatcherParser", "TestFallbackMatchersParser")
)
def test_default_parser_gives_alertmanagers_fallback_result(case: dict[str, Any]) -> None:
    one = case["test"] == "TestFallbackMatcherParser"
    try:
        found: Any = [Matcher.parse(case["input"])] if one else list(parse_matchers(case["input"]))
    except MatcherError as exc:
        assert "error" in case and case["error"] in str(exc)
        return
    assert [[m.name, m.op.value, m.value] for m in found] == _expected(case)


def _fallback_rule(utf8: list[list[str]] | str, classic: list[list[str]] | str) -> list[list[str]] | str:
    """matcher/compat/parse.go: the UTF-8 reading unless it fails or the classic one disagrees; else the classic."""
    if isinstance(utf8, str) or (not isinstance(classic, str) and classic != utf8):
        return classic
    return utf8


@pytest.mark.parametrize(
    "case",
    _cases("matcher_parse_parse_test.json", "TestMatchers") + _cases("pkg_labels_parse_test.json", "TestMatchers"),
)
def test_default_parser_reads_each_set_whole_as_alertmanager(case: dict[str, Any]) -> None:
    from_utf8 = "name" in case  # only matcher/parse cases carry a name
    utf8 = _expected(case) if from_utf8 else _read(parse_utf8, case["input"])
    classic = _read(parse_classic, case["input"]) if from_utf8 else _expected(case)
    expected = _fallback_rule(utf8, classic)
    try:
        found: list[list[str]] | str = [[m.name, m.op.value, m.value] for m in parse_matchers(case["input"])]
    except MatcherError as exc:
        assert isinstance(expected, str), exc
        return
    assert found == expected


@pytest.mark.parametrize("case", _cases("pkg_labels_matcher_test.json", "TestMatcher"))
def test_matcher_matches_as_alertmanager(case: dict[str, Any]) -> None:
    matcher = Matcher("l", MatchOp(case["op"]), case["value"])
    assert matcher.matches_value(case["label_value"]) is case["match"]
    assert matcher.matches({"l": case["label_value"]}) is case["match"]


@pytest.mark.parametrize("case", _cases("pkg_labels_matcher_test.json", "TestMatcherString"))
def test_matcher_is_written_as_alertmanager_writes_it(case: dict[str, Any]) -> None:
    matcher = Matcher(case["name"], MatchOp(case["op"]), case["value"])
    assert str(matcher) == case["string"]
    assert parse_matchers(str(matcher)) == (matcher,)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(name=_TEXT.filter(bool), op=st.sampled_from([MatchOp.eq, MatchOp.ne]), value=_TEXT)
def test_a_written_matcher_reads_back_the_same_in_both_alertmanager_parsers(name: str, op: MatchOp, value: str) -> None:
    matcher = Matcher(name, op, value)
    text = str(matcher)
    assert parse_utf8(text) == [(name, op.value, value)]
    classic = _read(parse_classic, text)
    assert isinstance(classic, str) or classic == [[name, op.value, value]]
    assert parse_matchers(text) == (matcher,)
