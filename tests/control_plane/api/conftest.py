"""An API app on the migrated test database, and two populated tenants to attack each other with."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlmodel import SQLModel

from control_plane.api import create_app
from control_plane.db import get_engine, session_scope
from control_plane.models import utcnow
from control_plane.services import agents, commands, join_tokens
from control_plane.settings import Settings
from tests.helpers.feature_defs import batch_definition


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class TenantWorld:
    """One tenant with an admin, a member and a viewer (each with a key) and one of each object."""

    tenant_id: str
    tenant_name: str
    admin_user_id: str
    admin_key: str
    admin_key_id: str
    member_user_id: str
    member_key: str
    member_key_id: str
    viewer_user_id: str
    viewer_key: str
    viewer_key_id: str
    project_id: str
    project_name: str
    join_token_id: str
    agent_id: str
    command_id: str
    model_id: str
    build_id: str
    other_build_id: str
    feature_set_id: str
    materialization_id: str
    deployment_id: str

    def ids(self) -> set[str]:
        """Every identifier of this tenant's objects, for 'never shown to another tenant' checks."""
        return {
            self.tenant_id,
            self.admin_user_id,
            self.admin_key_id,
            self.member_user_id,
            self.member_key_id,
            self.viewer_user_id,
            self.viewer_key_id,
            self.project_id,
            self.join_token_id,
            self.agent_id,
            self.command_id,
            self.model_id,
            self.build_id,
            self.other_build_id,
            self.feature_set_id,
            self.materialization_id,
            self.deployment_id,
        }


@dataclass(frozen=True)
class World:
    a: TenantWorld  # bootstrapped; its admin is the platform admin
    b: TenantWorld  # created by the platform admin through POST /tenants


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # `home` is only settable through its alias; a stray MALLARD_BOOTSTRAP_TOKEN must not leak in.
    return Settings(database_url=database_url, MALLARD_CP_HOME=tmp_path / "cp", bootstrap_token=None)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None


def seed_agent(database_url: str, tenant_id: str, name: str) -> tuple[str, str]:
    """Enroll an agent the way the gateway does, give it a command and an event. Returns (agent id, command id)."""
    with session_scope(database_url) as session:
        _row, token = join_tokens.create_join_token(
            session, tenant_id=tenant_id, name=name, ttl_seconds=600, max_ttl_seconds=3600, actor="test"
        )
        session.commit()
        agent = join_tokens.redeem_join_token(session, token=token, hostname=f"{name}.internal", version="0.1.0")
        session.commit()
        command = commands.create_command(session, agent=agent, type_="ping", spec={}, actor="test", ttl_seconds=600)
        agents.apply_event(
            session,
            agent=agent,
            seq=1,
            type_="agent.started",
            payload_json=json.dumps({"n": 1}),
            occurred_at=utcnow() - timedelta(seconds=1),
        )
        session.commit()
        return agent.id, command.id


def seed_deployment(client: TestClient, database_url: str, *, admin_key: str, agent_id: str, build_id: str) -> str:
    """Report `build_id` SUCCEEDED the way its agent would, then deploy it. Returns the deployment id."""
    from control_plane.models import Agent

    with session_scope(database_url) as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        finished = {"build_id": build_id, "status": "SUCCEEDED", "artifact_digest": "sha256:" + "e" * 64}
        agents.apply_event(
            session, agent=agent, seq=2, type_="build.finished", payload_json=json.dumps(finished), occurred_at=utcnow()
        )
        session.commit()
    model_id = ok(client.get(f"/api/v1/builds/{build_id}", headers=auth(admin_key)))["model_id"]
    body = {"model": model_id, "kind": "realtime", "build": build_id}
    return str(ok(client.post("/api/v1/deployments", headers=auth(admin_key), json=body), 201)["id"])


def populate_tenant(client: TestClient, database_url: str, *, name: str, admin_key: str) -> TenantWorld:
    me = ok(client.get("/api/v1/me", headers=auth(admin_key)))
    admin = auth(admin_key)
    keys: dict[str, tuple[str, str, str]] = {}
    for role in ("member", "viewer"):
        user = ok(
            client.post("/api/v1/users", headers=admin, json={"email": f"{role}@{name}.example", "role": role}), 201
        )
        key = ok(
            client.post("/api/v1/api-keys", headers=admin, json={"name": f"{role}-key", "user_id": user["id"]}), 201
        )
        keys[role] = (user["id"], key["key"], key["id"])
    project = ok(client.post("/api/v1/projects", headers=admin, json={"name": f"{name}-project"}), 201)
    token = ok(client.post("/api/v1/join-tokens", headers=admin, json={"name": f"{name}-pending"}), 201)
    agent_id, command_id = seed_agent(database_url, me["tenant"]["id"], f"{name}-agent")
    model = ok(
        client.post("/api/v1/models", headers=admin, json={"name": f"{name}-model", "project": project["id"]}), 201
    )
    build_ids = [
        ok(
            client.post(
                f"/api/v1/models/{model['id']}/builds",
                headers=admin,
                json={"agent_id": agent_id, "context_digest": "sha256:" + str(i) * 64, "tags": [f"{name}-tag"]},
            ),
            201,
        )["id"]
        for i in (1, 2)
    ]
    applied = ok(
        client.post(
            "/api/v1/feature-sets",
            headers=admin,
            json={"project": project["id"], "definitions": [batch_definition(f"{name}_stats")]},
        )
    )
    feature_set_id = applied["feature_sets"][0]["id"]
    materialization = ok(client.post(f"/api/v1/feature-sets/{feature_set_id}/materialize", headers=admin, json={}), 201)
    return TenantWorld(
        tenant_id=me["tenant"]["id"],
        tenant_name=name,
        admin_user_id=me["user"]["id"],
        admin_key=admin_key,
        admin_key_id=admin_key.split(".")[1],
        member_user_id=keys["member"][0],
        member_key=keys["member"][1],
        member_key_id=keys["member"][2],
        viewer_user_id=keys["viewer"][0],
        viewer_key=keys["viewer"][1],
        viewer_key_id=keys["viewer"][2],
        project_id=project["id"],
        project_name=project["name"],
        join_token_id=token["id"],
        agent_id=agent_id,
        command_id=command_id,
        model_id=model["id"],
        build_id=build_ids[0],
        other_build_id=build_ids[1],
        feature_set_id=feature_set_id,
        materialization_id=materialization["id"],
        deployment_id=seed_deployment(
            client, database_url, admin_key=admin_key, agent_id=agent_id, build_id=build_ids[0]
        ),
    )


@pytest.fixture
def world(client: TestClient, database_url: str) -> World:
    boot = ok(client.post("/api/v1/bootstrap", json={"tenant": "alpha", "email": "admin@alpha.example"}), 201)
    a = populate_tenant(client, database_url, name="alpha", admin_key=boot["api_key"]["key"])
    created = ok(
        client.post(
            "/api/v1/tenants", headers=auth(a.admin_key), json={"name": "beta", "admin_email": "admin@beta.example"}
        ),
        201,
    )
    b = populate_tenant(client, database_url, name="beta", admin_key=created["api_key"]["key"])
    return World(a=a, b=b)


def snapshot(database_url: str) -> dict[str, list[str]]:
    """Every row of every table, to prove a refused request stored nothing.

    api keys' last_used_at is left out: authenticating a request legitimately touches it.
    """
    out: dict[str, list[str]] = {}
    with get_engine(database_url).connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            rows = conn.execute(select(table)).mappings().all()
            out[table.name] = sorted(
                repr(
                    sorted((k, str(v)) for k, v in row.items() if not (table.name == "apikey" and k == "last_used_at"))
                )
                for row in rows
            )
    return out


def all_text(database_url: str) -> str:
    """Every value stored in the database, as one string (for 'the plaintext is nowhere' checks)."""
    parts: list[str] = []
    with get_engine(database_url).connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)
