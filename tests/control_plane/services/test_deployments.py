"""Deployments on the control plane: desired state sent whole with increasing revisions, the
agent's status and metrics folded in, variations and undeploy, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, col, select

from control_plane.models import Agent, AgentCommand, AuditLog, Deployment, ServingMetric, utcnow
from control_plane.services import agents, builds, commands, deployment_events, deployments
from shared import builds as build_contract
from shared import serving as contract
from shared.errors import Conflict, InvalidInput, NotFound
from tests.control_plane.services.test_builds import event, new_build, world

ARTIFACT = "sha256:" + "cd" * 32


def succeeded_build(session: Session, tenant_id: str, agent: Agent, seq: int, *, image: str | None = None) -> str:
    build = new_build(session, tenant_id, agent)
    payload = {"build_id": build.id, "status": "SUCCEEDED", "artifact_digest": ARTIFACT, "image": image}
    assert event(session, agent, seq, build_contract.FINISHED_EVENT, payload)
    return build.id


def deploy(session: Session, tenant_id: str, build_id: str, **kwargs: object) -> Deployment:
    args: dict = dict(tenant_id=tenant_id, model="churn-model", kind="realtime", build=build_id, actor="user:u")
    args.update(command_ttl_seconds=600, **kwargs)
    deployment, _created = deployments.deploy(session, **args)
    session.commit()
    return deployment


def sent(session: Session, agent: Agent) -> list[tuple[str, dict]]:
    rows = session.exec(
        select(AgentCommand)
        .where(col(AgentCommand.agent_id) == agent.id)
        .where(col(AgentCommand.type).startswith("deployment."))
        .order_by(col(AgentCommand.created_at))
    )
    return [(c.type, json.loads(c.spec_json)) for c in rows]


def test_deploy_sends_the_whole_desired_state_with_increasing_revisions(database_url: str) -> None:
    from control_plane.db import session_scope

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        first = succeeded_build(session, tenant_id, agent, 1)
        second = succeeded_build(session, tenant_id, agent, 2)
        dep = deploy(session, tenant_id, first)
        assert (dep.name, dep.kind, dep.revision, dep.state) == ("churn-model", "realtime", 1, "PENDING")
        again = deploy(session, tenant_id, second, variation="canary", weight=20, replicas=2)
        assert again.id == dep.id and again.revision == 2
        deploy(session, tenant_id, second, variation="shadow-check", shadow=True, weight=50)
        specs = sent(session, agent)
        assert [t for t, _ in specs] == [contract.APPLY_COMMAND] * 3
        assert [s["revision"] for _, s in specs] == [1, 2, 3]
        last = specs[-1][1]
        assert not contract.check_apply_spec(last)
        assert (last["model"], last["kind"], last["runtime"], last["logging"]) == (
            "churn-model",
            "realtime",
            "local",
            True,
        )
        by_name = {v["name"]: v for v in last["variations"]}
        assert set(by_name) == {"default", "canary", "shadow-check"}
        assert (by_name["canary"]["weight"], by_name["canary"]["replicas"]) == (20, 2)
        assert by_name["shadow-check"]["shadow"] and by_name["shadow-check"]["weight"] == 0
        assert by_name["default"]["artifact_digest"] == ARTIFACT
        history = deployments.revisions(session, dep)
        assert [(h.revision, h.action) for h in history] == [(1, "deploy"), (2, "deploy"), (3, "deploy")]
        assert json.loads(history[-1].spec_json) == last
        # Redeploying a variation with a new build keeps its weight and scale unless told otherwise.
        deploy(session, tenant_id, first, variation="canary")
        canary = next(v for v in sent(session, agent)[-1][1]["variations"] if v["name"] == "canary")
        assert (canary["build_id"], canary["weight"], canary["replicas"]) == (first, 20, 2)
        assert session.exec(select(AuditLog).where(col(AuditLog.action) == "deployment.deploy")).all()


def test_deploy_refuses_bad_builds_and_values_naming_the_field(database_url: str) -> None:
    from control_plane.db import session_scope

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        queued = new_build(session, tenant_id, agent)
        ok = succeeded_build(session, tenant_id, agent, 1)
        cases: list[tuple[dict, type[Exception], str]] = [
            ({"build": queued.id}, Conflict, "build"),
            ({"build": "bld_nope"}, NotFound, "build"),
            ({"model": "nope"}, NotFound, "model"),
            ({"kind": "serverless"}, InvalidInput, "kind"),
            ({"weight": 101}, InvalidInput, "weight"),
            ({"replicas": 0}, InvalidInput, "replicas"),
            ({"variation": "Bad_Name"}, InvalidInput, "variation"),
            ({"runtime": "k8s"}, InvalidInput, "runtime"),
            ({"runtime": "docker"}, Conflict, "runtime"),  # the build has no image
            ({"kind": "batch"}, InvalidInput, "batch"),
            ({"kind": "streaming", "streaming": {"redis_url": "http://x"}}, InvalidInput, "streaming"),
            ({"batch": {"input": "/in", "output": "/out"}}, InvalidInput, "batch"),  # realtime with batch settings
            ({"shadow": True}, InvalidInput, "shadow"),  # the only variation cannot be a shadow
            ({"weight": 0}, InvalidInput, "weight"),
            ({"timeout_ms": 0}, InvalidInput, "timeout_ms"),
        ]
        for override, error, field in cases:
            args: dict = dict(tenant_id=tenant_id, model="churn-model", kind="realtime", build=ok, actor="t")
            args.update(command_ttl_seconds=600)
            args.update(override)
            with pytest.raises(error) as caught:
                deployments.deploy(session, **args)
            assert caught.value.field == field, (override, caught.value)  # type: ignore[attr-defined]
            session.rollback()
        assert session.exec(select(Deployment)).all() == []
        assert sent(session, agent) == []


def test_batch_and_streaming_carry_their_settings(database_url: str) -> None:
    from control_plane.db import session_scope

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build_id = succeeded_build(session, tenant_id, agent, 1)
        batch = deploy(session, tenant_id, build_id, kind="batch", batch={"input": "/data/in", "output": "/data/out"})
        stream = {"redis_url": "redis://127.0.0.1:6379/0", "input_stream": "in", "output_stream": "out", "group": "g"}
        streaming = deploy(session, tenant_id, build_id, kind="streaming", streaming=stream)
        realtime = deploy(session, tenant_id, build_id)
        assert len({batch.id, streaming.id, realtime.id}) == 3
        assert (batch.name, streaming.name) == ("churn-model-batch", "churn-model-streaming")
        specs = {s["kind"]: s for _, s in sent(session, agent)}
        default = {"input": "/data/in", "output": "/data/out", "batch_rows": contract.DEFAULT_BATCH_ROWS}
        assert specs["batch"]["batch"] == default
        assert specs["streaming"]["streaming"] == stream and specs["streaming"]["batch"] is None
        # A finished batch job is final: deploying batch again starts a new deployment.
        assert _status(session, agent, 10, batch, state="RUNNING", rows_done=5, rows_total=5)
        assert _status(session, agent, 11, batch, state="SUCCEEDED")
        session.refresh(batch)
        assert (batch.state, batch.rows_done, batch.rows_total) == ("SUCCEEDED", 5, 5)
        again = deploy(session, tenant_id, build_id, kind="batch", batch={"input": "/data/in2", "output": "/o"})
        assert again.id != batch.id


def _status(session: Session, agent: Agent, seq: int, dep: Deployment, **payload: object) -> bool:
    body = {"deployment_id": dep.id, "revision": dep.revision, "at": "2026-11-28T01:00:00Z", **payload}
    return event(session, agent, seq, contract.STATUS_EVENT, body)


def test_status_events_update_the_deployment_and_late_ones_are_ignored(database_url: str) -> None:
    from control_plane.db import session_scope

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build_id = succeeded_build(session, tenant_id, agent, 1)
        dep = deploy(session, tenant_id, build_id, replicas=2)
        replicas = [{"variation": "default", "build_id": build_id, "ready": True, "restarts": 1}] * 2
        _status(session, agent, 2, dep, state="DEGRADED", message="replica 1 crashed; restarting", replicas=replicas)
        session.refresh(dep)
        assert (dep.state, dep.observed_revision, dep.message) == ("DEGRADED", 1, "replica 1 crashed; restarting")
        assert json.loads(dep.replicas_json)[0]["restarts"] == 1
        dep = deploy(session, tenant_id, build_id, replicas=3)  # revision 2
        _status(session, agent, 3, dep, state="RUNNING")
        stale = {"deployment_id": dep.id, "revision": 1, "state": "FAILED", "message": "old"}
        event(session, agent, 4, contract.STATUS_EVENT, stale)
        session.refresh(dep)
        assert (dep.state, dep.observed_revision) == ("RUNNING", 2)
        # Malformed reports are stored and skipped, never block the agent's later events.
        malformed: list[dict] = [
            {"deployment_id": dep.id, "revision": 2, "state": "EXPLODED"},
            {"deployment_id": dep.id, "revision": "x"},
        ]
        for seq, bad in enumerate(malformed, start=5):
            assert event(session, agent, seq, contract.STATUS_EVENT, bad)
        session.refresh(dep)
        assert dep.state == "RUNNING"
        assert agents.apply_event(
            session, agent=agent, seq=7, type_=contract.STATUS_EVENT, payload_json="not json", occurred_at=utcnow()
        )


def test_another_agents_report_changes_nothing(database_url: str) -> None:
    from control_plane.db import session_scope
    from control_plane.services.join_tokens import create_join_token, redeem_join_token

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        dep = deploy(session, tenant_id, succeeded_build(session, tenant_id, agent, 1))
        _row, token = create_join_token(
            session, tenant_id=tenant_id, name="other", ttl_seconds=600, max_ttl_seconds=3600, actor="t"
        )
        other = redeem_join_token(session, token=token)
        session.commit()
        _status(session, other, 1, dep, state="FAILED")
        metrics = {"deployment_id": dep.id, "model": "churn-model", "variation": "default", "build_id": "b"}
        event(session, other, 2, contract.METRICS_EVENT, {**metrics, "minute": "2026-11-28T01:00:00Z", "count": 1,
              "errors": 0, "p50_ms": 1, "p95_ms": 1, "p99_ms": 1})  # fmt: skip
        session.refresh(dep)
        assert dep.state == "PENDING"
        assert session.exec(select(ServingMetric)).all() == []


def test_metrics_are_stored_per_minute_and_summed(database_url: str) -> None:
    from control_plane.db import session_scope

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build_id = succeeded_build(session, tenant_id, agent, 1)
        dep = deploy(session, tenant_id, build_id)
        base = {"deployment_id": dep.id, "model": "churn-model", "variation": "default", "build_id": build_id}
        minute = {"minute": "2026-11-28T01:02:00Z"}
        event(session, agent, 2, contract.METRICS_EVENT, {**base, **minute, "count": 100, "errors": 2,
              "p50_ms": 2.0, "p95_ms": 5.0, "p99_ms": 9.0})  # fmt: skip
        event(session, agent, 3, contract.METRICS_EVENT, {**base, **minute, "count": 100, "errors": 0,
              "p50_ms": 4.0, "p95_ms": 7.0, "p99_ms": 11.0})  # fmt: skip
        event(session, agent, 4, contract.METRICS_EVENT, {**base, "minute": "2026-11-28T01:03:00Z", "count": 50,
              "errors": 50, "p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0})  # fmt: skip
        # A redelivered event (same seq) is applied once; a bad one is skipped.
        assert not agents.apply_event(
            session, agent=agent, seq=4, type_=contract.METRICS_EVENT, payload_json="{}", occurred_at=utcnow()
        )
        event(session, agent, 5, contract.METRICS_EVENT, {**base, **minute, "count": 1, "errors": 5,
              "p50_ms": 1, "p95_ms": 1, "p99_ms": 1})  # fmt: skip
        summary = deployment_events.model_metrics(session, tenant_id=tenant_id, model="churn-model")
        assert (summary["count"], summary["errors"], summary["error_rate"]) == (250, 52, 0.208)
        newest, older = summary["minutes"]
        assert (newest["minute"], newest["count"], newest["error_rate"]) == ("2026-11-28T01:03:00Z", 50, 1.0)
        assert (older["count"], older["errors"], older["p50_ms"], older["p99_ms"]) == (200, 2, 3.0, 10.0)
        since = datetime(2026, 11, 28, 1, 3, tzinfo=UTC)
        assert (
            deployment_events.model_metrics(session, tenant_id=tenant_id, model="churn-model", since=since)["count"]
            == 50
        )


def test_undeploy_a_variation_then_the_whole_deployment(database_url: str) -> None:
    from control_plane.db import session_scope

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        first = succeeded_build(session, tenant_id, agent, 1)
        second = succeeded_build(session, tenant_id, agent, 2)
        dep = deploy(session, tenant_id, first)
        deploy(session, tenant_id, second, variation="canary", weight=20)
        with pytest.raises(NotFound):
            deployments.undeploy(
                session, tenant_id=tenant_id, deployment_id=dep.id, variation="nope", actor="t", command_ttl_seconds=60
            )
        deployments.undeploy(
            session, tenant_id=tenant_id, deployment_id=dep.id, variation="canary", actor="t", command_ttl_seconds=60
        )
        session.commit()
        with pytest.raises(Conflict) as caught:
            deployments.undeploy(
                session, tenant_id=tenant_id, deployment_id=dep.id, variation="default", actor="t",
                command_ttl_seconds=60,
            )  # fmt: skip
        assert caught.value.field == "variation"
        session.rollback()
        deployments.undeploy(
            session, tenant_id=tenant_id, deployment_id="churn-model", actor="t", command_ttl_seconds=60
        )
        session.commit()
        deployments.undeploy(session, tenant_id=tenant_id, deployment_id=dep.id, actor="t", command_ttl_seconds=60)
        session.commit()
        specs = sent(session, agent)
        assert [(t, s.get("revision")) for t, s in specs] == [
            (contract.APPLY_COMMAND, 1),
            (contract.APPLY_COMMAND, 2),
            (contract.APPLY_COMMAND, 3),
            (contract.DELETE_COMMAND, None),
        ]
        assert [v["name"] for v in specs[2][1]["variations"]] == ["default"]
        assert specs[3][1] == {"deployment_id": dep.id}
        session.refresh(dep)
        assert (dep.desired, dep.revision, dep.state) == ("stopped", 4, "PENDING")
        _status(session, agent, 3, dep, state="STOPPED")
        session.refresh(dep)
        assert dep.state == "STOPPED" and dep.stopped_at is not None
        assert deployments.list_deployments(session, tenant_id=tenant_id) == []
        assert [d.id for d in deployments.list_deployments(session, tenant_id=tenant_id, include_stopped=True)] == [
            dep.id
        ]
        # The model can be deployed afresh.
        assert deploy(session, tenant_id, first).id != dep.id


def test_a_refused_apply_fails_the_current_revision_only(database_url: str) -> None:
    from control_plane.db import session_scope

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build_id = succeeded_build(session, tenant_id, agent, 1)
        dep = deploy(session, tenant_id, build_id)
        first_command = session.exec(select(AgentCommand).where(col(AgentCommand.type) == "deployment.apply")).one()
        deploy(session, tenant_id, build_id, replicas=2)
        commands.record_ack(
            session, agent_id=agent.id, command_id=first_command.id, ok=False, result_json="", error="x"
        )
        session.commit()
        session.refresh(dep)
        assert dep.state == "PENDING"  # revision 1's refusal says nothing about revision 2
        latest = [c for c in session.exec(select(AgentCommand).where(col(AgentCommand.type) == "deployment.apply"))]
        current = next(c for c in latest if json.loads(c.spec_json)["revision"] == 2)
        commands.record_ack(
            session, agent_id=agent.id, command_id=current.id, ok=False, result_json="", error="no docker here"
        )
        session.commit()
        session.refresh(dep)
        assert dep.state == "FAILED" and "no docker here" in (dep.message or "")
        # A failed deployment is fixed in place by the next deploy, not duplicated.
        fixed = deploy(session, tenant_id, build_id, replicas=1)
        assert (fixed.id, fixed.revision) == (dep.id, 3)
        command = session.exec(select(AgentCommand).order_by(col(AgentCommand.created_at).desc())).first()
        assert command is not None and (command.expires_at - command.created_at).total_seconds() > 6.9 * 86400


def test_builds_of_another_model_cannot_be_deployed(database_url: str) -> None:
    from control_plane.db import session_scope

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build_id = succeeded_build(session, tenant_id, agent, 1)
        builds.create_model(session, tenant_id=tenant_id, name="other", project="churn", description="", actor="t")
        session.commit()
        with pytest.raises(InvalidInput) as caught:
            deployments.deploy(
                session, tenant_id=tenant_id, model="other", kind="realtime", build=build_id, actor="t",
                command_ttl_seconds=60,
            )  # fmt: skip
        assert caught.value.field == "build"
