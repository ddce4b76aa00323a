"""Bad input on every route with a body: a 422 that names the field, never a 500, and nothing stored."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.control_plane.api.conftest import World, auth, snapshot
from tests.control_plane.api.routes_catalog import VALID_BODIES, ApiRoute, api_routes
from tests.helpers.feature_defs import batch_definition

# Values that pass the JSON schema but not the domain rules, per route: (body override, field named).
DOMAIN_ERRORS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "bootstrap": [({"tenant": "Not_A_Name"}, "tenant"), ({"email": "not-an-email"}, "email")],
    "create_tenant": [({"name": "-bad-"}, "name"), ({"admin_email": "nobody"}, "admin_email")],
    "add_user": [
        ({"email": "a@b@c"}, "email"),
        ({"email": "two words@x.example"}, "email"),
        ({"role": "owner"}, "role"),
    ],
    "change_user_role": [({"role": "superuser"}, "role")],
    "create_api_key": [({"name": ""}, "name"), ({"expires_in_days": 0}, "expires_in_days")],
    "create_project": [
        ({"name": "UPPER"}, "name"),
        ({"name": "x" * 64}, "name"),
        ({"description": "d" * 2001}, "description"),
    ],
    "update_project": [({"description": "d" * 2001}, "description")],
    "create_join_token": [
        ({"name": "a_b"}, "name"),
        ({"ttl_seconds": 5}, "ttl_seconds"),
        ({"ttl_seconds": 10**9}, "ttl_seconds"),
    ],
    "create_command": [
        ({"type": "format-disk"}, "type"),
        ({"type": "ping", "spec": {"rm": 1}}, "spec"),
        ({"wait_seconds": 61}, "wait_seconds"),
        ({"wait_seconds": -1}, "wait_seconds"),
    ],
    "create_model": [({"name": "Not_Valid"}, "name"), ({"description": "d" * 2001}, "description")],
    "create_deployment": [
        ({"kind": "serverless"}, "kind"),
        ({"weight": 101}, "weight"),
        ({"replicas": 0}, "replicas"),
        ({"replicas": 17}, "replicas"),
        ({"variation": "Not_Valid"}, "variation"),
        ({"runtime": "kubernetes"}, "runtime"),
        ({"timeout_ms": 0}, "timeout_ms"),
        ({"kind": "batch"}, "batch"),
        ({"kind": "streaming"}, "streaming"),
        ({"batch": {"input": "/in", "output": "/out"}}, "batch"),
        ({"kind": "batch", "batch": {"input": "", "output": "/out"}}, "batch"),
    ],
    "create_build": [
        ({"builder": "kubernetes"}, "builder"),
        ({"context_digest": "md5:abc"}, "context_digest"),
        ({"tags": ["no spaces allowed"]}, "tags"),
        ({"params": {"": "x"}}, "params"),
    ],
    "apply_feature_sets": [
        ({"definitions": []}, "definitions"),
        ({"definitions": [{**batch_definition(), "name": "Not-Valid"}]}, "definitions"),
        ({"definitions": [{**batch_definition(), "kind": "table"}]}, "definitions"),
        ({"definitions": [{**batch_definition(), "version": 0}]}, "definitions"),
        ({"definitions": [batch_definition("twice"), batch_definition("twice")]}, "definitions"),
    ],
    "materialize_feature_set": [
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end"),
        ({"start": None}, "start"),
        ({"version": 0}, "version"),
    ],
}


def _required(app: FastAPI, route: ApiRoute) -> set[str]:
    schema = app.openapi()
    operation = schema["paths"][route.path][route.method.lower()]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return set(schema["components"]["schemas"][ref.rsplit("/", 1)[-1]].get("required", []))


def _bad_requests(app: FastAPI, route: ApiRoute) -> list[tuple[str, dict[str, Any], str]]:
    """(what, request kwargs, field the error must name)."""
    valid = VALID_BODIES[route.name]
    json_header = {"Content-Type": "application/json"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("invalid JSON", {"content": b'{"name": ', "headers": json_header}, "body"),
        ("no body", {}, "body"),
        ("a list, not an object", {"json": [valid]}, "body"),
        ("an extra field", {"json": {**valid, "tenant_id": "ten_other"}}, "tenant_id"),
    ]
    for field in valid:
        cases.append((f"{field} of the wrong type", {"json": {**valid, field: ["not", "this"]}}, field))
    for field in _required(app, route):
        body = {k: v for k, v in valid.items() if k != field}
        cases.append((f"{field} missing", {"json": body}, field))
    for override, field in DOMAIN_ERRORS[route.name]:
        cases.append((f"bad {field} value", {"json": {**valid, **override}}, field))
    return cases


def test_every_body_route_has_domain_error_cases(app: FastAPI) -> None:
    assert {r.name for r in api_routes(app) if r.has_body} == set(DOMAIN_ERRORS)


def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
    app: FastAPI, client: TestClient, world: World, database_url: str
) -> None:
    body_routes = [r for r in api_routes(app) if r.has_body]
    assert len(body_routes) == len(VALID_BODIES)
    before = snapshot(database_url)
    for route in body_routes:
        for what, kwargs, field in _bad_requests(app, route):
            headers = {**auth(world.a.admin_key), **kwargs.pop("headers", {})}
            response = client.request(route.method, route.url(world.a), headers=headers, **kwargs)
            assert response.status_code == 422, f"{route} with {what}: {response.status_code} {response.text}"
            error = response.json()["error"]
            assert error["code"] == "invalid_input"
            assert error["field"] == field, f"{route} with {what}: {error}"
            assert field in error["message"] or field == "body", f"{route} with {what}: {error}"
    assert snapshot(database_url) == before


@pytest.mark.parametrize(("params", "field"), [({"timeout": "soon"}, "timeout"), ({"timeout": 61}, "timeout")])
def test_bad_query_parameters_name_the_parameter(
    client: TestClient, world: World, params: dict[str, Any], field: str
) -> None:
    response = client.post(
        f"/api/v1/agents/{world.a.agent_id}/describe", headers=auth(world.a.admin_key), params=params
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    response = client.get("/api/v1/audit", headers=auth(world.a.admin_key), params={"limit": 0})
    assert (response.status_code, response.json()["error"]["field"]) == (422, "limit")
