"""Deployments through the REST API: deploy, redeploy, variations, history, undeploy, metrics."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from control_plane.db import session_scope
from control_plane.models import Agent, utcnow
from control_plane.services import agents
from tests.control_plane.api.conftest import World, auth, ok


def report(database_url: str, agent_id: str, seq: int, type_: str, payload: dict) -> None:
    with session_scope(database_url) as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        agents.apply_event(
            session, agent=agent, seq=seq, type_=type_, payload_json=json.dumps(payload), occurred_at=utcnow()
        )
        session.commit()


def test_deploy_redeploy_and_undeploy_through_the_api(client: TestClient, world: World, database_url: str) -> None:
    a = world.a
    member = auth(a.member_key)
    shown = ok(client.get(f"/api/v1/deployments/{a.deployment_id}", headers=auth(a.viewer_key)))
    assert (shown["model"], shown["kind"], shown["revision"], shown["state"]) == (
        "alpha-model",
        "realtime",
        1,
        "PENDING",
    )
    assert shown["data_plane_url"] == "" and shown["desired"] == "running"
    # The same build as a second, shadow variation: the existing deployment gets revision 2 (200, not 201).
    body = {"model": "alpha-model", "kind": "realtime", "build": a.build_id, "variation": "mirror", "shadow": True}
    updated = ok(client.post("/api/v1/deployments", headers=member, json=body))
    assert updated["id"] == a.deployment_id and updated["revision"] == 2
    assert {v["name"]: v["shadow"] for v in updated["variations"]} == {"default": False, "mirror": True}
    # A build that has not succeeded cannot be deployed.
    refused = client.post("/api/v1/deployments", headers=member, json={**body, "build": a.other_build_id})
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "build"
    replicas = [{"variation": "default", "build_id": a.build_id, "ready": True}]
    status = {"deployment_id": a.deployment_id, "revision": 2, "state": "RUNNING", "replicas": replicas}
    report(database_url, a.agent_id, 3, "deployment.status", status)
    listed = ok(client.get("/api/v1/deployments", headers=member, params={"model": "alpha-model"}))
    assert [(d["id"], d["state"], d["observed_revision"]) for d in listed] == [(a.deployment_id, "RUNNING", 2)]
    history = ok(client.get(f"/api/v1/deployments/{a.deployment_id}/history", headers=member))
    assert [h["revision"] for h in history] == [1, 2] and history[1]["spec"]["variations"][1]["name"] == "mirror"
    # Remove the shadow, then stop everything.
    removed = ok(
        client.delete(f"/api/v1/deployments/{a.deployment_id}", headers=member, params={"variation": "mirror"})
    )
    assert [v["name"] for v in removed["variations"]] == ["default"] and removed["revision"] == 3
    missing = client.delete(f"/api/v1/deployments/{a.deployment_id}", headers=member, params={"variation": "mirror"})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "variation"
    stopped = ok(client.delete(f"/api/v1/deployments/{a.deployment_id}", headers=member))
    assert (stopped["desired"], stopped["revision"]) == ("stopped", 4)
    report(database_url, a.agent_id, 4, "deployment.status", {"deployment_id": a.deployment_id, "revision": 4,
           "state": "STOPPED"})  # fmt: skip
    assert ok(client.get("/api/v1/deployments", headers=member)) == []
    assert [d["state"] for d in ok(client.get("/api/v1/deployments", headers=member, params={"all": True}))] == [
        "STOPPED"
    ]


def test_metrics_of_a_model(client: TestClient, world: World, database_url: str) -> None:
    a = world.a
    minute = {"deployment_id": a.deployment_id, "model": "alpha-model", "variation": "default", "build_id": a.build_id}
    for seq, (at, count, errors) in enumerate([("2026-11-28T01:00:00Z", 10, 1), ("2026-11-28T01:01:00Z", 30, 0)], 3):
        report(database_url, a.agent_id, seq, "serving.metrics", {**minute, "minute": at, "count": count,
               "errors": errors, "p50_ms": 1.5, "p95_ms": 3.0, "p99_ms": 4.0})  # fmt: skip
    metrics = ok(client.get("/api/v1/models/alpha-model/metrics", headers=auth(a.viewer_key)))
    assert (metrics["count"], metrics["errors"], metrics["error_rate"]) == (40, 1, 0.025)
    assert [m["minute"] for m in metrics["minutes"]] == ["2026-11-28T01:01:00Z", "2026-11-28T01:00:00Z"]
    later = ok(
        client.get(
            "/api/v1/models/alpha-model/metrics", headers=auth(a.viewer_key), params={"since": "2026-11-28T01:01:00Z"}
        )
    )
    assert later["count"] == 30
    bad = client.get("/api/v1/models/alpha-model/metrics", headers=auth(a.viewer_key), params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "since"
    # Tenant B sees none of A's numbers, and cannot deploy A's build into its own model.
    assert client.get("/api/v1/models/alpha-model/metrics", headers=auth(world.b.admin_key)).status_code == 404
    theirs = {"model": "beta-model", "kind": "realtime", "build": a.build_id}
    refused = client.post("/api/v1/deployments", headers=auth(world.b.admin_key), json=theirs)
    assert refused.status_code == 404 and refused.json()["error"]["field"] == "build"
