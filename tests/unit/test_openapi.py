"""The OpenAPI document: valid OpenAPI 3.1, and exactly the routes the server registers."""

from __future__ import annotations

import redis.asyncio as aioredis
from openapi_spec_validator import validate

from adapters.readmodel import IncidentStore
from adapters.silence_store import SilenceStore
from firebreak.settings import Settings
from ingest.server import create_app


def documented_and_served() -> tuple[set[tuple[str, str]], set[tuple[str, str]], dict]:
    from ingest import openapi
    from ingest.server import REQUEST_BODIES

    spec = openapi.document(REQUEST_BODIES)
    documented = {(method.upper(), path) for path, methods in spec["paths"].items() for method in methods}
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0")  # never connected: building the app reads nothing
    app = create_app(
        Settings(ingest_tokens="t"),
        producer=None,
        store=IncidentStore(client, "t:"),  # type: ignore[arg-type]
        silences=SilenceStore(client, "t:"),
    )
    served = {
        (r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None and r.method != "HEAD"
    }
    return documented, served, spec


def test_the_document_is_valid_openapi():
    _, _, spec = documented_and_served()
    validate(spec)
    assert spec["openapi"] == "3.1.0"


def test_every_route_is_documented_and_nothing_else():
    documented, served, _ = documented_and_served()
    assert served - documented == set(), "routes the server has but /openapi.json does not document"
    assert documented - served == set(), "documented routes the server does not have"


def test_request_bodies_are_the_models_the_handlers_parse():
    _, _, spec = documented_and_served()
    body = spec["paths"]["/api/v1/incidents/{incident_id}/ack"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert body == {"$ref": "#/components/schemas/CommandBody"}
    assert set(spec["components"]["schemas"]["CommandBody"]["properties"]) == {"actor", "comment"}
    assert spec["paths"]["/healthz"]["get"]["security"] == [] and spec["security"] == [{"bearer": []}]


def test_merge_and_split_document_their_own_bodies():
    _, _, spec = documented_and_served()
    for route, model, fields in [
        ("merge", "MergeBody", {"into", "actor", "comment"}),
        ("split", "SplitBody", {"alerts", "actor", "comment"}),
    ]:
        body = spec["paths"][f"/api/v1/incidents/{{incident_id}}/{route}"]["post"]["requestBody"]["content"][
            "application/json"
        ]
        assert body["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert set(spec["components"]["schemas"][model]["properties"]) == fields
    alerts = spec["components"]["schemas"]["SplitBody"]["properties"]["alerts"]
    assert alerts["minItems"] == 1 and alerts["maxItems"] == 1000 and alerts["items"]["maxLength"] == 128
