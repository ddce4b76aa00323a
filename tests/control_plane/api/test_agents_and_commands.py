"""Agents, their commands (including waiting for an agent's answer), events, and join tokens."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import col, select

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCommand, JoinToken, utcnow
from control_plane.services import agents, commands, join_tokens
from control_plane.services.commands import INTERNAL_COMMAND_TYPES
from shared.errors import PermissionDenied
from tests.control_plane.api.conftest import World, auth, ok

AGENT_FIELDS = {
    "id",
    "name",
    "tenant_id",
    "hostname",
    "version",
    "capabilities",
    "data_plane_url",
    "status",
    "connected",
    "last_seen_at",
    "connected_at",
    "cert_serial",
    "cert_expires_at",
    "revoked_at",
    "created_at",
}


def ack_when_created(database_url: str, agent_id: str, type_: str, result: dict[str, Any]) -> threading.Thread:
    """Play the gateway: ack the first open command of `type_` as soon as it exists (10 s deadline)."""

    def run() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with session_scope(database_url) as session:
                command = session.exec(
                    select(AgentCommand)
                    .where(col(AgentCommand.agent_id) == agent_id)
                    .where(col(AgentCommand.type) == type_)
                    .where(col(AgentCommand.state) == "pending")
                ).first()
                if command is not None:
                    commands.record_ack(
                        session,
                        agent_id=agent_id,
                        command_id=command.id,
                        ok=True,
                        result_json=json.dumps(result),
                        error="",
                    )
                    session.commit()
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_agents_list_and_show(client: TestClient, world: World) -> None:
    listed = ok(client.get("/api/v1/agents", headers=auth(world.a.viewer_key)))
    assert [a["id"] for a in listed] == [world.a.agent_id]
    agent = listed[0]
    assert set(agent) == AGENT_FIELDS
    assert (agent["status"], agent["hostname"], agent["capabilities"]) == ("offline", "alpha-agent.internal", [])
    assert agent["created_at"].endswith("Z")
    assert ok(client.get(f"/api/v1/agents/{world.a.agent_id}", headers=auth(world.a.viewer_key))) == agent


def test_agent_online_status_follows_heartbeats(client: TestClient, world: World, database_url: str) -> None:
    with session_scope(database_url) as session:
        agent = session.get(Agent, world.a.agent_id)
        assert agent is not None
        agents.mark_connected(
            session,
            agent,
            version="0.2.0",
            capabilities=["describe", "ping"],
            data_plane_url="http://10.0.0.5:8800",
            hostname="gpu-1",
        )
        session.commit()
    shown = ok(client.get(f"/api/v1/agents/{world.a.agent_id}", headers=auth(world.a.admin_key)))
    assert (shown["status"], shown["connected"], shown["capabilities"]) == ("online", True, ["describe", "ping"])


def test_create_command_and_wait_for_the_agents_answer(client: TestClient, world: World, database_url: str) -> None:
    thread = ack_when_created(database_url, world.a.agent_id, "describe", {"version": "0.1.0"})
    view = ok(
        client.post(
            f"/api/v1/agents/{world.a.agent_id}/commands",
            headers=auth(world.a.member_key),
            json={"type": "describe", "wait_seconds": 10},
        ),
        201,
    )
    thread.join(10)
    assert (view["state"], view["result"]) == ("succeeded", {"version": "0.1.0"})
    assert ok(client.get(f"/api/v1/commands/{view['id']}", headers=auth(world.a.viewer_key))) == view


def test_create_command_without_waiting_returns_it_pending(client: TestClient, world: World) -> None:
    started = time.monotonic()
    view = ok(
        client.post(
            f"/api/v1/agents/{world.a.agent_id}/commands",
            headers=auth(world.a.member_key),
            json={"type": "ping", "spec": {"delay_seconds": 1}},
        ),
        201,
    )
    assert time.monotonic() - started < 1
    assert (view["state"], view["spec"], view["type"]) == ("pending", {"delay_seconds": 1}, "ping")
    listed = ok(client.get(f"/api/v1/agents/{world.a.agent_id}/commands", headers=auth(world.a.viewer_key)))
    # The seeded builds, deployment and feature sets queued their own internal commands; the rest
    # are the two pings.
    pings = [c for c in listed if c["type"] == "ping"]
    assert listed[0]["id"] == view["id"] and {c["id"] for c in pings} == {view["id"], world.a.command_id}
    assert {c["type"] for c in listed} - {"ping"} <= set(INTERNAL_COMMAND_TYPES)


def test_describe_answers_200_when_done_and_202_while_open(client: TestClient, world: World, database_url: str) -> None:
    url = f"/api/v1/agents/{world.a.agent_id}/describe"
    thread = ack_when_created(database_url, world.a.agent_id, "describe", {"hostname": "gpu-1"})
    done = client.post(url, headers=auth(world.a.member_key), params={"timeout": 10})
    thread.join(10)
    assert done.status_code == 200 and done.json()["result"] == {"hostname": "gpu-1"}

    started = time.monotonic()
    open_ = client.post(url, headers=auth(world.a.member_key), params={"timeout": 0.3})
    assert open_.status_code == 202 and open_.json()["state"] == "pending"
    assert 0.3 <= time.monotonic() - started < 5


def test_revoked_agent_gets_no_commands(client: TestClient, world: World) -> None:
    admin = auth(world.a.admin_key)
    revoked = ok(client.post(f"/api/v1/agents/{world.a.agent_id}/revoke", headers=admin))
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    response = client.post(f"/api/v1/agents/{world.a.agent_id}/commands", headers=admin, json={"type": "ping"})
    assert response.status_code == 409 and response.json()["error"]["field"] == "agent_id"


def test_agent_events_newest_first_with_limit(client: TestClient, world: World, database_url: str) -> None:
    with session_scope(database_url) as session:
        agent = session.get(Agent, world.a.agent_id)
        assert agent is not None
        last = agent.last_event_seq  # the seeded world already reported some events
        for seq in (last + 1, last + 2):
            agents.apply_event(
                session,
                agent=agent,
                seq=seq,
                type_="build.finished",
                payload_json=json.dumps({"seq": seq}),
                occurred_at=utcnow(),
            )
        session.commit()
    events = ok(
        client.get(f"/api/v1/agents/{world.a.agent_id}/events", headers=auth(world.a.viewer_key), params={"limit": 2})
    )
    assert [(e["seq"], e["payload"]) for e in events] == [(last + 2, {"seq": last + 2}), (last + 1, {"seq": last + 1})]


def test_join_tokens_show_status_and_never_the_secret(client: TestClient, world: World, database_url: str) -> None:
    admin = auth(world.a.admin_key)
    fresh = ok(client.post("/api/v1/join-tokens", headers=admin, json={"name": "edge-1"}), 201)
    assert fresh["token"].startswith(f"mjt.{fresh['id']}.") and fresh["status"] == "active"
    with session_scope(database_url) as session:
        session.execute(
            update(JoinToken)
            .where(col(JoinToken.id) == world.a.join_token_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    listed = client.get("/api/v1/join-tokens", headers=admin)
    assert fresh["token"].split(".")[2] not in listed.text and all("token" not in t for t in listed.json())
    by_name = {t["name"]: t for t in listed.json()}
    assert by_name["edge-1"]["status"] == "active"
    assert by_name["alpha-pending"]["status"] == "expired"
    assert (by_name["alpha-agent"]["status"], by_name["alpha-agent"]["agent_id"]) == ("redeemed", world.a.agent_id)

    assert ok(client.delete(f"/api/v1/join-tokens/{fresh['id']}", headers=admin))["status"] == "revoked"
    assert ok(client.delete(f"/api/v1/join-tokens/{fresh['id']}", headers=admin))["status"] == "revoked"
    with session_scope(database_url) as session, pytest.raises(PermissionDenied, match="revoked"):
        join_tokens.redeem_join_token(session, token=fresh["token"])
    used = client.delete(f"/api/v1/join-tokens/{by_name['alpha-agent']['id']}", headers=admin)
    assert used.status_code == 409 and "revoke the agent" in used.json()["error"]["message"]


def test_join_token_ttl_defaults_to_the_setting(client: TestClient, world: World) -> None:
    from datetime import datetime

    token = ok(client.post("/api/v1/join-tokens", headers=auth(world.a.admin_key), json={"name": "edge-2"}), 201)
    lifetime = datetime.fromisoformat(token["expires_at"]) - datetime.fromisoformat(token["created_at"])
    assert abs(lifetime.total_seconds() - 900) < 5
