"""The silences API refuses what Alertmanager's API v2 refuses, with `invalid_silence`, and expires as it does."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.conftest import TOKEN, Ingest

pytestmark = pytest.mark.integration


def body(matchers: list[str], **more: str) -> str:
    return json.dumps(
        {"matchers": matchers, "createdBy": "ana", "comment": "maintenance", **({"duration": "1h"} | more)}
    )


def listed(ingest: Ingest, query: str = "") -> dict[str, dict]:
    return {s["id"]: s for s in ingest.get(f"/api/v1/silences{query}").json()["silences"]}


@pytest.mark.parametrize("matchers", [['env=~".*"'], ['servcie=""'], ['{env=~".*", team=""}']])
def test_a_silence_that_would_hide_every_alert_is_refused_with_the_reason(ingest: Ingest, matchers):
    response = ingest.post("/api/v1/silences", body(matchers))
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "invalid_silence"
    assert [p["field"] for p in answer["problems"]] == ["matchers"]
    assert "at least one matcher must not match the empty string" in answer["problems"][0]["problem"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(['service=~"(a)\\\\1"']), "matchers"),  # a backreference: not RE2
        (body(['service="db"'], comment=""), "comment"),
        (body(['service="db"'], endsAt="2020-01-01T00:00:00Z", duration=None), "endsAt"),
        (body(['service="db"'], endsAt="9999-12-31T23:59:59Z", duration=None), "endsAt"),  # a silence for good
        (body(['service="db"'], endsAt="1796058000", duration=None), "endsAt"),  # an epoch in disguise
        (body(['service="db"'], createdBy="ana\u202e"), "createdBy"),  # a bidi control in a name shown everywhere
        (body(['service="db"'], startsAt="2999-01-01T00:00:00Z"), "startsAt"),
        (body(['service="db"'], startsAt="9999-12-31T23:00:00Z", duration="2d"), "startsAt"),  # past datetime's range
        (body(['alertname="Zq"'], duration="99999999999999999999999d"), "duration"),  # past timedelta's range
        (body(['alertname="Zq"'], duration="9999999999w"), "duration"),
        (body(['alertname="Zq"'], duration="367d"), "duration"),  # longer than the documented 366 days
        (body(['alertname="Zq"'], duration="\u0663h"), "duration"),  # an Arabic-Indic 3: Go's ParseDuration refuses it
    ],
)
def test_every_bad_silence_is_answered_invalid_silence_naming_the_field(ingest: Ingest, payload, field):
    payload = json.dumps({k: v for k, v in json.loads(payload).items() if v is not None})
    response = ingest.post("/api/v1/silences", payload)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_silence"
    assert field in [p["field"] for p in response.json()["problems"]]


def test_a_set_entry_is_accepted_and_listed_as_its_matchers(ingest: Ingest):
    service = f"silence-set-{uuid.uuid4().hex[:8]}"
    response = ingest.post("/api/v1/silences", body([f'{{service="{service}", env=~"prod.*"}}']))
    assert response.status_code == 201, response.text
    assert response.json()["matchers"] == [f'service="{service}"', 'env=~"prod.*"']


def test_expiring_a_silence_that_has_not_started_removes_it_from_the_pending_list(ingest: Ingest):
    starts = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = ingest.post("/api/v1/silences", body([f'service="pending-{uuid.uuid4().hex[:8]}"'], startsAt=starts))
    assert created.status_code == 201, created.text
    silence_id = created.json()["id"]
    assert silence_id in listed(ingest)
    ended = requests.delete(
        f"{ingest.url}/api/v1/silences/{silence_id}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["startsAt"] == ended.json()["endsAt"]
    assert silence_id not in listed(ingest)
    assert listed(ingest, "?all=1")[silence_id]["endsAt"] == ended.json()["endsAt"]


def test_expiring_a_silence_twice_is_a_conflict_as_in_alertmanager(ingest: Ingest):
    created = ingest.post("/api/v1/silences", body([f'service="twice-{uuid.uuid4().hex[:8]}"']))
    assert created.status_code == 201, created.text
    url = f"{ingest.url}/api/v1/silences/{created.json()['id']}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    first = requests.delete(url, headers=auth, timeout=30)
    assert first.status_code == 200, first.text
    again = requests.delete(url, headers=auth, timeout=30)
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "invalid_silence"
    assert f"silence {created.json()['id']} already expired" in again.json()["message"]
    assert (
        listed(ingest, "?all=1")[created.json()["id"]]["endsAt"] == first.json()["endsAt"]
    )  # left as the first made it
