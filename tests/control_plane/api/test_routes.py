"""The route table itself: what the enumerating tests see is everything the API serves."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.control_plane.api.routes_catalog import PATH_PARAMS, PREFIX, VALID_BODIES, api_routes


def test_enumeration_matches_openapi_and_catalogue(app: FastAPI) -> None:
    routes = api_routes(app)
    assert len(routes) >= 30
    documented = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(PREFIX)
        for method in operations
    }
    assert {(r.method, r.path) for r in routes} == documented
    assert {p for r in routes for p in r.params} == set(PATH_PARAMS)
    assert {r.name for r in routes if r.has_body} == set(VALID_BODIES)
    assert len({r.name for r in routes}) == len(routes), "route names are used in messages; keep them unique"


def test_openapi_and_docs_are_served_with_a_tag_per_resource(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    tags = {t["name"] for t in schema["tags"]}
    assert {"users", "api-keys", "projects", "join-tokens", "agents", "commands", "audit", "data-plane"} <= tags
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            assert operation.get("tags"), f"{path} has no tag"
    assert client.get("/docs").status_code == 200


def test_health_needs_no_key(client: TestClient) -> None:
    import shared

    assert client.get("/api/v1/health").json() == {"status": "ok", "version": shared.__version__}


def test_unknown_route_uses_the_error_shape(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = client.put("/api/v1/health")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
