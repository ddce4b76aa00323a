"""Tenant isolation, checked over every route: tenant B can neither see nor touch tenant A's objects."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.control_plane.api.conftest import TenantWorld, World, auth, ok, snapshot
from tests.control_plane.api.routes_catalog import PATH_PARAMS, ApiRoute, api_routes, request_kwargs

# Routes not about a tenant's objects, or about the caller only.
UNSCOPED = {"health", "bootstrap", "me", "get_current_tenant", "create_data_plane_token"}
# Listings: they must show only the caller's tenant.
LISTS = {
    "list_users",
    "list_api_keys",
    "list_projects",
    "list_join_tokens",
    "list_agents",
    "list_audit_entries",
    "list_models",
    "list_builds",
    "list_deployments",
    "list_feature_sets",
}
# Creations without a path parameter: they act in the caller's tenant, whatever the body says.
CREATES = {
    "create_tenant",
    "add_user",
    "create_api_key",
    "create_project",
    "create_join_token",
    "create_model",
    "create_deployment",
    "apply_feature_sets",
}


def _categorised(app: FastAPI) -> tuple[list[ApiRoute], list[ApiRoute]]:
    routes = api_routes(app)
    with_params = [r for r in routes if r.params]
    without = [r for r in routes if not r.params]
    # Every route is in exactly one group, so a new one cannot skip this test.
    assert {r.name for r in without} == UNSCOPED | LISTS | CREATES
    assert not {r.name for r in with_params} & (UNSCOPED | LISTS | CREATES)
    assert with_params and {p for r in with_params for p in r.params} == set(PATH_PARAMS)
    return routes, with_params


def _leaks(text: str, victim: TenantWorld) -> set[str]:
    return {identifier for identifier in victim.ids() if identifier in text}


def test_object_routes_refuse_another_tenants_ids(
    app: FastAPI, client: TestClient, world: World, database_url: str
) -> None:
    _routes, object_routes = _categorised(app)
    before = snapshot(database_url)
    for route in object_routes:
        response = client.request(
            route.method, route.url(world.a), headers=auth(world.b.admin_key), **request_kwargs(route)
        )
        assert response.status_code in (403, 404), f"{route} with B's key on A's ids: {response.text}"
        assert response.json()["error"]["code"] in ("not_found", "permission_denied")
        # Echoing the id the caller sent is fine; showing any other of A's ids is a leak.
        sent = {PATH_PARAMS[p](world.a) for p in route.params}
        assert not _leaks(response.text, world.a) - sent, f"{route}: {response.text}"
    assert snapshot(database_url) == before
    # And A's objects are still there for A.
    assert ok(client.get(f"/api/v1/projects/{world.a.project_id}", headers=auth(world.a.admin_key)))


def test_reads_with_own_ids_never_show_another_tenant(app: FastAPI, client: TestClient, world: World) -> None:
    routes, _ = _categorised(app)
    reads = [r for r in routes if r.method == "GET" and r.name not in UNSCOPED]
    assert {r.name for r in reads} >= LISTS
    for route in reads:
        for key in (world.b.admin_key, world.b.member_key):
            response = client.get(route.url(world.b), headers=auth(key), **request_kwargs(route))
            assert response.status_code in (200, 403), f"{route}: {response.text}"
            # A's admin is the platform admin who created tenant B: B's audit log names them as
            # the actor of that, by design. Nothing else of A's may appear.
            text = response.text.replace(f'"actor":"user:{world.a.admin_user_id}"', "")
            assert not _leaks(text, world.a), f"{route} shows tenant A's objects: {response.text}"
    listed = ok(client.get("/api/v1/projects", headers=auth(world.b.admin_key)))
    assert [p["id"] for p in listed] == [world.b.project_id]


def test_unscoped_routes_describe_only_the_caller(client: TestClient, world: World) -> None:
    me = ok(client.get("/api/v1/me", headers=auth(world.b.member_key)))
    assert (me["tenant"]["id"], me["user"]["id"], me["role"]) == (world.b.tenant_id, world.b.member_user_id, "member")
    assert ok(client.get("/api/v1/tenants/current", headers=auth(world.b.viewer_key)))["id"] == world.b.tenant_id
    token = ok(client.post("/api/v1/data-plane/token", headers=auth(world.b.member_key)))
    assert token["tenant_id"] == world.b.tenant_id


def test_creates_act_in_the_callers_tenant_whatever_the_body_says(
    client: TestClient, world: World, database_url: str
) -> None:
    b_admin = auth(world.b.admin_key)
    # Minting a key for another tenant's user is refused as "no such user".
    response = client.post("/api/v1/api-keys", headers=b_admin, json={"name": "x", "user_id": world.a.admin_user_id})
    assert response.status_code == 404, response.text
    # Only platform admins create tenants.
    response = client.post("/api/v1/tenants", headers=b_admin, json={"name": "gamma", "admin_email": "g@g.example"})
    assert response.status_code == 403, response.text
    # Names are unique per tenant: B may reuse A's project name, and learns nothing from it.
    project = ok(client.post("/api/v1/projects", headers=b_admin, json={"name": world.a.project_name}), 201)
    assert project["tenant_id"] == world.b.tenant_id and project["id"] != world.a.project_id
    token = ok(client.post("/api/v1/join-tokens", headers=b_admin, json={"name": "alpha-agent"}), 201)
    assert token["tenant_id"] == world.b.tenant_id
    # Fields the caller might try to smuggle a tenant through are refused, not ignored.
    response = client.post("/api/v1/projects", headers=b_admin, json={"name": "p2", "tenant_id": world.a.tenant_id})
    assert response.status_code == 422 and response.json()["error"]["field"] == "tenant_id"
    a_projects = ok(client.get("/api/v1/projects", headers=auth(world.a.admin_key)))
    assert [p["id"] for p in a_projects] == [world.a.project_id]


def test_an_admin_cannot_adopt_another_tenants_user_and_act_as_them(client: TestClient, world: World) -> None:
    """Regression: attaching an existing (platform-admin) user to tenant B, then minting a key for
    them, let B's admin create tenants. Existing emails are refused outright."""
    b_admin = auth(world.b.admin_key)
    response = client.post("/api/v1/users", headers=b_admin, json={"email": "admin@alpha.example", "role": "admin"})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["field"] == "email"
    assert world.a.admin_user_id not in response.text
    users = ok(client.get("/api/v1/users", headers=b_admin))
    assert world.a.admin_user_id not in {u["id"] for u in users}
    response = client.post("/api/v1/api-keys", headers=b_admin, json={"name": "x", "user_id": world.a.admin_user_id})
    assert response.status_code == 404
