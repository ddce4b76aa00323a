"""Roles: viewers only read; members work on projects, commands and their own keys; admins do the rest."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.control_plane.api.conftest import World, auth, ok, snapshot
from tests.control_plane.api.routes_catalog import api_routes, request_kwargs

UNAUTHENTICATED = {"bootstrap"}  # has its own credential (X-Bootstrap-Token), not an API key


def test_viewer_cannot_change_anything(app: FastAPI, client: TestClient, world: World, database_url: str) -> None:
    writes = [r for r in api_routes(app) if r.method != "GET" and r.name not in UNAUTHENTICATED]
    assert len(writes) >= 15
    before = snapshot(database_url)
    for route in writes:
        response = client.request(
            route.method, route.url(world.a), headers=auth(world.a.viewer_key), **request_kwargs(route)
        )
        assert response.status_code == 403, f"{route}: {response.text}"
        error = response.json()["error"]
        assert error["code"] == "permission_denied"
        assert error["message"].startswith("role viewer cannot "), error
    assert snapshot(database_url) == before
    # Reading is what a viewer is for.
    assert ok(client.get("/api/v1/projects", headers=auth(world.a.viewer_key)))[0]["id"] == world.a.project_id
    assert ok(client.get(f"/api/v1/agents/{world.a.agent_id}", headers=auth(world.a.viewer_key)))


def test_member_is_refused_admin_work(client: TestClient, world: World, database_url: str) -> None:
    member = auth(world.a.member_key)
    before = snapshot(database_url)
    refused = [
        client.post("/api/v1/users", headers=member, json={"email": "x@alpha.example", "role": "viewer"}),
        client.patch(f"/api/v1/users/{world.a.viewer_user_id}", headers=member, json={"role": "admin"}),
        client.delete(f"/api/v1/users/{world.a.viewer_user_id}", headers=member),
        client.post("/api/v1/join-tokens", headers=member, json={"name": "sneaky"}),
        client.get("/api/v1/join-tokens", headers=member),
        client.delete(f"/api/v1/join-tokens/{world.a.join_token_id}", headers=member),
        client.post(f"/api/v1/agents/{world.a.agent_id}/revoke", headers=member),
        client.get("/api/v1/audit", headers=member),
        client.delete(f"/api/v1/projects/{world.a.project_id}", headers=member),
        client.post("/api/v1/api-keys", headers=member, json={"name": "theirs", "user_id": world.a.viewer_user_id}),
        client.post("/api/v1/tenants", headers=member, json={"name": "gamma", "admin_email": "g@gamma.example"}),
    ]
    for response in refused:
        assert response.status_code == 403, f"{response.request.method} {response.request.url}: {response.text}"
        assert response.json()["error"]["message"].startswith(("role member cannot", "only platform admins")), (
            response.text
        )
    # Another user's key is invisible to a member, and cannot be revoked.
    assert client.delete(f"/api/v1/api-keys/{world.a.viewer_key_id}", headers=member).status_code == 404
    keys = ok(client.get("/api/v1/api-keys", headers=member))
    assert [k["id"] for k in keys] == [world.a.member_key_id]
    assert snapshot(database_url) == before


def test_member_does_member_work(client: TestClient, world: World) -> None:
    member = auth(world.a.member_key)
    project = ok(client.post("/api/v1/projects", headers=member, json={"name": "mine", "description": "x"}), 201)
    assert ok(client.patch("/api/v1/projects/mine", headers=member, json={"description": "y"}))["description"] == "y"
    assert project["tenant_id"] == world.a.tenant_id
    command = ok(client.post(f"/api/v1/agents/{world.a.agent_id}/commands", headers=member, json={"type": "ping"}), 201)
    assert command["created_by"] == f"user:{world.a.member_user_id}"
    key = ok(client.post("/api/v1/api-keys", headers=member, json={"name": "laptop"}), 201)
    assert key["user_id"] == world.a.member_user_id
    assert ok(client.delete(f"/api/v1/api-keys/{key['id']}", headers=member))["status"] == "revoked"
    assert ok(client.post("/api/v1/data-plane/token", headers=member))["tenant_id"] == world.a.tenant_id


def test_admin_sees_and_revokes_every_key_in_the_tenant(client: TestClient, world: World) -> None:
    admin = auth(world.a.admin_key)
    keys = {k["id"] for k in ok(client.get("/api/v1/api-keys", headers=admin))}
    assert keys == {world.a.admin_key_id, world.a.member_key_id, world.a.viewer_key_id}
    assert ok(client.delete(f"/api/v1/api-keys/{world.a.viewer_key_id}", headers=admin))["status"] == "revoked"
    assert client.get("/api/v1/me", headers=auth(world.a.viewer_key)).status_code == 401
