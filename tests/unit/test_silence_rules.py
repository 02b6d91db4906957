"""Silences follow Alertmanager's rules: none that hides every alert, and expiring a pending one cancels it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from correlation.suppression import SilenceAlreadyExpired, expire, silenced_by
from firebreak.check import SilenceSpec
from schemas import Silence, SilenceFile
from schemas.silence import refuse_silencing_everything

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def silence(starts: datetime, ends: datetime, matchers: tuple[str, ...] = ('service="db"',)) -> Silence:
    return Silence(id="s1", matchers=list(matchers), starts_at=starts, ends_at=ends, created_by="ana", comment="c")


@pytest.mark.parametrize("matchers", [['env=~".*"'], ['servcie=""'], ['{env=~".*", team=""}'], ["{}"]])
def test_a_silence_whose_matchers_all_match_the_empty_string_is_refused(matchers):
    with pytest.raises(ValueError, match="at least one matcher must not match the empty string.*add a matcher"):
        refuse_silencing_everything(matchers)


@pytest.mark.parametrize("matchers", [['service="db"'], ['env=~".*", service="db"'], ['env=~".+"'], ['env!="prod"']])
def test_a_silence_with_one_matcher_that_needs_a_value_is_accepted(matchers):
    # != and !~ never count as matching the empty string, as in Alertmanager's matchesEmpty.
    assert refuse_silencing_everything(matchers) == matchers


def test_replay_files_and_check_fixtures_refuse_it_too():
    everything = silence(NOW, NOW + HOUR, ('env=~".*"',)).model_dump(by_alias=True)
    with pytest.raises(ValidationError, match="silences\n.*at least one matcher"):
        SilenceFile.model_validate({"silences": [everything]})
    with pytest.raises(ValidationError, match="matchers\n.*at least one matcher"):
        SilenceSpec.model_validate({"matchers": ['team=""'], "for": "1h"})


def test_expiring_a_pending_silence_cancels_it_before_it_starts():
    pending = silence(NOW + HOUR, NOW + 2 * HOUR)
    ended = expire(pending, NOW)
    assert ended.starts_at == ended.ends_at == NOW  # Alertmanager's Silences.expire for a pending silence
    assert silenced_by({"service": "db"}, [ended], NOW + HOUR + timedelta(minutes=1)) is None


def test_expiring_an_active_silence_ends_it_now_and_an_expired_one_is_refused():
    active = silence(NOW - HOUR, NOW + HOUR)
    assert (expire(active, NOW).starts_at, expire(active, NOW).ends_at) == (NOW - HOUR, NOW)
    done = silence(NOW - 2 * HOUR, NOW - HOUR)
    with pytest.raises(SilenceAlreadyExpired, match=f"silence {done.id} already expired"):  # as Silences.expire
        expire(done, NOW)


def test_a_silence_stored_by_the_earlier_release_matches_what_it_matched_then():
    # The earlier release wrote values JSON-quoted ("caf\u00e9", "a\tb"); Alertmanager's parser reads those escapes
    # literally. Stored silences are read the old way and written back in Alertmanager's syntax.
    import json as _json

    from adapters.silence_store import decode, encode
    from schemas.matchers import parse_matcher_list

    old = _json.dumps(
        {
            "id": "s1",
            "matchers": ['service="caf\\u00e9"', 'note="a\\tb"', 'instance=~"db-[0-9]+"'],
            "startsAt": "2026-03-01T09:00:00Z",
            "endsAt": "2026-03-01T10:00:00Z",
            "createdBy": "ana",
            "comment": "c",
        }
    )
    silence = decode(old)
    matchers = parse_matcher_list(silence.matchers)
    assert all(m.matches({"service": "café", "note": "a\tb", "instance": "db-12"}) for m in matchers)
    assert decode(encode(silence)) == silence  # written back in the current syntax, read back the same
