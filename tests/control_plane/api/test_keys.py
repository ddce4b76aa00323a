"""API keys, bootstrap, and the invariants around them: hashed storage, one-time display, revocation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from control_plane.api import create_app
from control_plane.db import session_scope
from control_plane.models import ApiKey, utcnow
from control_plane.services.secrets import hash_secret
from control_plane.settings import Settings
from tests.control_plane.api.conftest import World, all_text, auth, ok, snapshot


def test_keys_are_stored_hashed_and_shown_once(client: TestClient, world: World, database_url: str) -> None:
    created = ok(client.post("/api/v1/api-keys", headers=auth(world.a.member_key), json={"name": "ci"}), 201)
    plaintext = created["key"]
    kind, key_id, secret = plaintext.split(".")
    assert (kind, key_id) == ("mk", created["id"])
    stored = all_text(database_url)
    for known in (plaintext, secret, world.a.admin_key.split(".")[2], world.b.viewer_key.split(".")[2]):
        assert known not in stored
    assert hash_secret(secret) in stored
    listed = client.get("/api/v1/api-keys", headers=auth(world.a.admin_key))
    assert secret not in listed.text and all("key" not in k for k in listed.json())
    assert ok(client.get("/api/v1/me", headers=auth(plaintext)))["user"]["id"] == world.a.member_user_id


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "not a Bearer token"),
        ("Bearer nonsense", "malformed"),
        ("Bearer mk.key_doesnotexist.abc", "not recognised"),
    ],
)
def test_missing_or_bad_keys_are_401(client: TestClient, header: str | None, says: str) -> None:
    response = client.get("/api/v1/projects", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "unauthenticated" and says in error["message"]


def test_wrong_secret_revoked_and_expired_keys_are_401(client: TestClient, world: World, database_url: str) -> None:
    _, key_id, secret = world.a.member_key.split(".")
    response = client.get("/api/v1/me", headers=auth(f"mk.{key_id}.{secret[:-2]}xx"))
    assert response.status_code == 401 and "not recognised" in response.json()["error"]["message"]

    ok(client.delete(f"/api/v1/api-keys/{world.a.member_key_id}", headers=auth(world.a.admin_key)))
    response = client.get("/api/v1/me", headers=auth(world.a.member_key))
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]

    with session_scope(database_url) as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == world.a.viewer_key_id)  # type: ignore[arg-type]
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    response = client.get("/api/v1/me", headers=auth(world.a.viewer_key))
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]
    statuses = {k["id"]: k["status"] for k in ok(client.get("/api/v1/api-keys", headers=auth(world.a.admin_key)))}
    assert statuses[world.a.member_key_id] == "revoked" and statuses[world.a.viewer_key_id] == "expired"


def test_keys_with_an_expiry(client: TestClient, world: World) -> None:
    created = ok(
        client.post("/api/v1/api-keys", headers=auth(world.a.admin_key), json={"name": "temp", "expires_in_days": 2}),
        201,
    )
    assert created["expires_at"] > utcnow().isoformat()[:19] and created["expires_at"].endswith("Z")


def test_last_used_at_is_written_at_most_once_a_minute(client: TestClient, world: World, database_url: str) -> None:
    def last_used() -> object:
        with session_scope(database_url) as session:
            key = session.get(ApiKey, world.a.member_key_id)
            assert key is not None
            return key.last_used_at

    ok(client.get("/api/v1/me", headers=auth(world.a.member_key)))
    first = last_used()
    assert first is not None
    ok(client.get("/api/v1/me", headers=auth(world.a.member_key)))
    assert last_used() == first
    with session_scope(database_url) as session:
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == world.a.member_key_id)  # type: ignore[arg-type]
            .values(last_used_at=utcnow() - timedelta(minutes=2))
        )
        session.commit()
    ok(client.get("/api/v1/me", headers=auth(world.a.member_key)))
    assert last_used() != first


def test_bootstrap_happens_once(client: TestClient, database_url: str) -> None:
    created = ok(
        client.post("/api/v1/bootstrap", json={"tenant": "first", "email": "Root@Example.COM", "name": "Root"}), 201
    )
    assert created["user"]["is_platform_admin"] and created["user"]["role"] == "admin"
    assert created["user"]["email"] == "root@example.com"
    assert ok(client.get("/api/v1/me", headers=auth(created["api_key"]["key"])))["tenant"]["name"] == "first"
    before = snapshot(database_url)
    again = client.post("/api/v1/bootstrap", json={"tenant": "second", "email": "evil@example.com"})
    assert again.status_code == 409 and "already bootstrapped" in again.json()["error"]["message"]
    same_name = client.post("/api/v1/bootstrap", json={"tenant": "first", "email": "root@example.com"})
    assert same_name.status_code == 409
    assert snapshot(database_url) == before


def test_bootstrap_token_is_required_when_configured(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, MALLARD_CP_HOME=tmp_path / "cp", bootstrap_token="s3cret")
    body = {"tenant": "first", "email": "root@example.com"}
    with TestClient(create_app(settings)) as client:
        for headers in ({}, {"X-Bootstrap-Token": "guess"}):
            response = client.post("/api/v1/bootstrap", json=body, headers=headers)
            assert response.status_code == 401 and "X-Bootstrap-Token" in response.json()["error"]["message"]
        ok(client.post("/api/v1/bootstrap", json=body, headers={"X-Bootstrap-Token": "s3cret"}), 201)


def test_duplicate_project_name_is_409_and_lookup_by_name_works(client: TestClient, world: World) -> None:
    admin = auth(world.a.admin_key)
    response = client.post("/api/v1/projects", headers=admin, json={"name": world.a.project_name})
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "name"
    by_name = ok(client.get(f"/api/v1/projects/{world.a.project_name}", headers=admin))
    assert by_name["id"] == world.a.project_id
    # A project that still has models is not deleted out from under them.
    refused = client.delete(f"/api/v1/projects/{world.a.project_name}", headers=admin)
    assert refused.status_code == 409 and "alpha-model" in refused.json()["error"]["message"]
    spare = ok(client.post("/api/v1/projects", headers=admin, json={"name": "spare"}), 201)
    assert client.delete("/api/v1/projects/spare", headers=admin).status_code == 204
    assert client.get(f"/api/v1/projects/{spare['id']}", headers=admin).status_code == 404
    ok(client.post("/api/v1/projects", headers=admin, json={"name": "spare"}), 201)


def test_duplicate_user_and_tenant_are_409(client: TestClient, world: World) -> None:
    admin = auth(world.a.admin_key)
    response = client.post("/api/v1/users", headers=admin, json={"email": "MEMBER@alpha.example", "role": "viewer"})
    assert (response.status_code, response.json()["error"]["field"]) == (409, "email")
    response = client.post("/api/v1/tenants", headers=admin, json={"name": "beta", "admin_email": "x@beta.example"})
    assert (response.status_code, response.json()["error"]["field"]) == (409, "name")


def test_the_last_admin_cannot_be_demoted_or_removed(client: TestClient, world: World, database_url: str) -> None:
    admin = auth(world.a.admin_key)
    before = snapshot(database_url)
    demote = client.patch(f"/api/v1/users/{world.a.admin_user_id}", headers=admin, json={"role": "member"})
    remove = client.delete(f"/api/v1/users/{world.a.admin_user_id}", headers=admin)
    for response in (demote, remove):
        assert response.status_code == 409, response.text
        assert "at least one admin" in response.json()["error"]["message"]
    assert snapshot(database_url) == before
    # With a second admin, the first may step down.
    ok(client.patch(f"/api/v1/users/{world.a.member_user_id}", headers=admin, json={"role": "admin"}))
    assert (
        ok(client.patch(f"/api/v1/users/{world.a.admin_user_id}", headers=admin, json={"role": "viewer"}))["role"]
        == "viewer"
    )


def test_removing_a_user_revokes_their_keys_in_that_tenant(client: TestClient, world: World) -> None:
    admin = auth(world.a.admin_key)
    assert client.delete(f"/api/v1/users/{world.a.member_user_id}", headers=admin).status_code == 204
    assert client.get("/api/v1/me", headers=auth(world.a.member_key)).status_code == 401
    assert client.get(f"/api/v1/users/{world.a.member_user_id}", headers=admin).status_code == 404
    statuses = {k["id"]: k["status"] for k in ok(client.get("/api/v1/api-keys", headers=admin))}
    assert statuses[world.a.member_key_id] == "revoked"
    # The same person can be added back (one user row across tenants), with a fresh membership.
    again = ok(
        client.post("/api/v1/users", headers=admin, json={"email": "member@alpha.example", "role": "viewer"}), 201
    )
    assert again["id"] == world.a.member_user_id and again["role"] == "viewer"
