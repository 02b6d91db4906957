"""Token scopes and what each route needs."""

from __future__ import annotations

import pytest

from ingest.auth import Principal, Scope, TokenAuth, audited, parse_entries, required_scope
from ingest.errors import IngestError


def test_entries_name_a_scope_or_are_admin():
    parsed = parse_entries(["ingest:alertmanager:tok-a", "operator:ana:tok-b", "plain-token"])
    assert parsed == [
        (b"tok-a", Principal("alertmanager", Scope.ingest)),
        (b"tok-b", Principal("ana", Scope.operator)),
        (b"plain-token", Principal("token-3", Scope.admin)),
    ]
    with pytest.raises(ValueError, match="<scope>:<name>:<token>"):
        parse_entries(["operator::tok"])


def test_the_token_decides_the_principal():
    auth = TokenAuth(["ingest:am:secret-1", "admin:root:secret-2"])
    assert auth.check("Bearer secret-1") == Principal("am", Scope.ingest)
    assert auth.check("bearer secret-2") == Principal("root", Scope.admin)
    for bad in (None, "Bearer", "Basic c2VjcmV0LTE=", "Bearer secret-3", "Bearer am"):
        with pytest.raises(IngestError) as info:
            auth.check(bad)
        assert info.value.status == 401


@pytest.mark.parametrize(
    ("method", "route", "scope"),
    [
        ("POST", "/api/v1/alerts", Scope.ingest),
        ("POST", "/api/v1/alerts/alertmanager", Scope.ingest),
        ("POST", "/api/v1/changes", Scope.ingest),
        ("GET", "/api/v1/incidents", Scope.operator),
        ("POST", "/api/v1/incidents/{incident_id}/ack", Scope.operator),
        ("POST", "/api/v1/incidents/{incident_id}/merge", Scope.operator),
        ("POST", "/api/v1/incidents/{incident_id}/split", Scope.operator),
        ("DELETE", "/api/v1/silences/{silence_id}", Scope.operator),
        ("POST", "/api/v1/runs/{run_id}/approve", Scope.operator),
        ("POST", "/api/v1/runbooks/pause", Scope.admin),
        ("GET", "/api/v1/audit", Scope.admin),
        ("POST", "/api/v1/something-new", Scope.admin),  # closed until placed
    ],
)
def test_each_route_needs_a_scope(method: str, route: str, scope: Scope):
    assert required_scope(method, route) is scope


def test_operator_and_admin_actions_are_audited_reads_and_ingest_are_not():
    assert audited("POST", "/api/v1/incidents/{incident_id}/resolve") and audited("POST", "/api/v1/runbooks/pause")
    assert audited("POST", "/api/v1/incidents/{incident_id}/merge") and audited(
        "POST", "/api/v1/incidents/{incident_id}/split"
    )
    assert (
        not audited("POST", "/api/v1/alerts")
        and not audited("GET", "/api/v1/incidents")
        and not audited("GET", "/api/v1/audit")
    )


def test_each_token_has_its_own_bucket():
    from ingest.auth import RateLimits, retry_after

    limits = RateLimits(rate=2)  # 2 a second, bursts of 4
    assert [limits.wait_for("am", now=0.0) for _ in range(4)] == [0, 0, 0, 0]
    assert limits.wait_for("am", now=0.0) == 0.5 and retry_after(0.5) == "1"
    assert limits.wait_for("ana", now=0.0) == 0  # another token is not held back
    assert limits.wait_for("am", now=0.5) == 0  # a token came back after half a second
    assert RateLimits(rate=0).wait_for("am") == 0
