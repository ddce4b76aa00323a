"""Every state change through the API leaves an audit row; the log cannot be rewritten."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from control_plane.db import get_engine
from control_plane.models import utcnow
from tests.control_plane.api.conftest import World, auth, ok


def test_each_state_change_is_audited_with_actor_action_target_and_time(client: TestClient, world: World) -> None:
    a = world.a
    admin = auth(a.admin_key)
    started = utcnow() - timedelta(seconds=1)
    project = ok(client.post("/api/v1/projects", headers=admin, json={"name": "audited"}), 201)
    ok(client.patch("/api/v1/projects/audited", headers=admin, json={"description": "d"}))
    assert client.delete("/api/v1/projects/audited", headers=admin).status_code == 204
    user = ok(client.post("/api/v1/users", headers=admin, json={"email": "new@alpha.example", "role": "viewer"}), 201)
    ok(client.patch(f"/api/v1/users/{user['id']}", headers=admin, json={"role": "member"}))
    key = ok(client.post("/api/v1/api-keys", headers=admin, json={"name": "k", "user_id": user["id"]}), 201)
    ok(client.delete(f"/api/v1/api-keys/{key['id']}", headers=admin))
    assert client.delete(f"/api/v1/users/{user['id']}", headers=admin).status_code == 204
    token = ok(client.post("/api/v1/join-tokens", headers=admin, json={"name": "edge"}), 201)
    ok(client.delete(f"/api/v1/join-tokens/{token['id']}", headers=admin))
    command = ok(client.post(f"/api/v1/agents/{a.agent_id}/commands", headers=admin, json={"type": "ping"}), 201)
    ok(client.post(f"/api/v1/agents/{a.agent_id}/revoke", headers=admin))
    tenant = ok(
        client.post("/api/v1/tenants", headers=admin, json={"name": "gamma", "admin_email": "g@g.example"}), 201
    )

    expected = {
        ("project.create", project["id"]),
        ("project.update", project["id"]),
        ("project.delete", project["id"]),
        ("user.add", user["id"]),
        ("user.change_role", user["id"]),
        ("user.remove", user["id"]),
        ("api_key.create", key["id"]),
        ("api_key.revoke", key["id"]),
        ("join_token.create", token["id"]),
        ("join_token.revoke", token["id"]),
        ("command.create", command["id"]),
        ("agent.revoke", a.agent_id),
    }
    entries = ok(client.get("/api/v1/audit", headers=admin, params={"limit": 1000}))
    recorded = {(e["action"], e["target_id"]): e for e in entries}
    assert expected <= set(recorded)
    for action, target in expected:
        entry = recorded[(action, target)]
        assert entry["actor"] == f"user:{a.admin_user_id}" and entry["tenant_id"] == a.tenant_id
        assert entry["target_type"] == action.split(".")[0]
        assert datetime.fromisoformat(entry["created_at"]) >= started
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True), "newest first"
    # The tenant creation is recorded in the new tenant's log, where its admins can see who did it.
    gamma = ok(client.get("/api/v1/audit", headers=auth(tenant["api_key"]["key"]), params={"action": "tenant.create"}))
    assert [(e["target_id"], e["actor"]) for e in gamma] == [(tenant["tenant"]["id"], f"user:{a.admin_user_id}")]
    only = ok(client.get("/api/v1/audit", headers=admin, params={"action": "user.remove"}))
    assert [e["target_id"] for e in only] == [user["id"]]
    assert len(ok(client.get("/api/v1/audit", headers=admin, params={"limit": 2}))) == 2


def test_refused_requests_leave_no_audit_row(client: TestClient, world: World) -> None:
    admin = auth(world.a.admin_key)
    count = len(ok(client.get("/api/v1/audit", headers=admin, params={"limit": 1000})))
    client.post("/api/v1/projects", headers=admin, json={"name": world.a.project_name})  # 409
    client.patch(f"/api/v1/users/{world.a.admin_user_id}", headers=admin, json={"role": "viewer"})  # 409
    client.post("/api/v1/projects", headers=auth(world.a.viewer_key), json={"name": "nope"})  # 403
    assert len(ok(client.get("/api/v1/audit", headers=admin, params={"limit": 1000}))) == count


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'someone-else'", "DELETE FROM audit_log"])
def test_audit_log_refuses_update_and_delete(world: World, database_url: str, statement: str) -> None:
    engine = get_engine(database_url)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE actor = 'someone-else'")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar()


@pytest.mark.postgres
def test_audit_log_refuses_truncate_on_postgresql() -> None:
    """SQLite has no TRUNCATE; on PostgreSQL it would bypass the row triggers, so it has its own."""
    from control_plane.db import migrate
    from tests.helpers.servers import fresh_postgres_database

    with fresh_postgres_database() as url:
        migrate(url)
        engine = get_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO audit_log (actor, action, target_type, target_id, details_json, created_at) "
                    "VALUES ('test', 'x.y', 'thing', 'id', '{}', now())"
                )
            )
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_log"))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == 1
        engine.dispose()
