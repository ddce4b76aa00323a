"""Builds on the control plane: dispatch, the agent's events folded in, filters, leases."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCommand, Build, Project, Tenant, utcnow
from control_plane.services import agents, builds
from control_plane.services.join_tokens import create_join_token, redeem_join_token
from shared import builds as contract
from shared.errors import Conflict, InvalidInput, NotFound

DIGEST = "sha256:" + "ab" * 32


def world(session: Session) -> tuple[str, Agent]:
    tenant = Tenant(name="acme")
    session.add(tenant)
    session.flush()
    session.add(Project(tenant_id=tenant.id, name="churn"))
    _row, token = create_join_token(
        session, tenant_id=tenant.id, name="edge", ttl_seconds=600, max_ttl_seconds=3600, actor="t"
    )
    agent = redeem_join_token(session, token=token)
    session.flush()
    builds.create_model(session, tenant_id=tenant.id, name="churn-model", project="churn", description="", actor="t")
    session.commit()
    return tenant.id, agent


def new_build(session: Session, tenant_id: str, agent: Agent, **overrides: object) -> Build:
    kwargs: dict = dict(
        tenant_id=tenant_id,
        model="churn-model",
        agent_id=agent.id,
        context_digest=DIGEST,
        builder="local",
        params={"C": "1.0"},
        tags=["nightly"],
        actor="t",
        command_ttl_seconds=600,
    )
    kwargs.update(overrides)
    build = builds.create_build(session, **kwargs)
    session.commit()
    return build


def event(session: Session, agent: Agent, seq: int, type_: str, payload: dict) -> bool:
    applied = agents.apply_event(
        session, agent=agent, seq=seq, type_=type_, payload_json=json.dumps(payload), occurred_at=utcnow()
    )
    session.commit()
    return applied


def test_build_is_queued_with_a_run_command_for_its_agent(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build = new_build(session, tenant_id, agent)
        assert build.status == "QUEUED"
        command = session.get(AgentCommand, build.command_id)
        assert command is not None and command.type == contract.RUN_COMMAND and command.agent_id == agent.id
        spec = json.loads(command.spec_json)
        assert spec == {
            "build_id": build.id,
            "tenant_id": tenant_id,
            "model": "churn-model",
            "context_digest": DIGEST,
            "builder": "local",
            "params": {"C": "1.0"},
            "tags": ["nightly"],
        }


def test_events_drive_the_build_to_success_once(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build = new_build(session, tenant_id, agent)
        for seq, phase in enumerate(contract.PHASES, start=1):
            event(
                session,
                agent,
                seq,
                contract.PHASE_EVENT,
                {"build_id": build.id, "phase": phase.value, "state": "succeeded", "at_unix_ms": 1_700_000_000_000},
            )
        finished = {
            "build_id": build.id,
            "status": "SUCCEEDED",
            "params": {"C": "1.0", "max_iter": "200"},
            "metrics": {"accuracy": 0.93, "bad": "text"},
            "artifact_digest": "sha256:" + "cd" * 32,
            "artifact_uri": "mallard-store://artifacts/sha256/" + "cd" * 32,
            "duration_seconds": 3.2,
        }
        assert event(session, agent, 10, contract.FINISHED_EVENT, finished)
        assert not event(session, agent, 10, contract.FINISHED_EVENT, finished)  # a redelivery changes nothing
        session.refresh(build)
        view = builds.build_view(build)
        assert view["status"] == "SUCCEEDED" and view["metrics"] == {"accuracy": 0.93}
        assert view["params"]["max_iter"] == "200" and len(view["phases"]) == len(contract.PHASES)
        assert view["artifact_digest"] == "sha256:" + "cd" * 32 and view["finished_at"]
        assert view["duration_seconds"] == 3.2  # the agent's own measurement, not the event's arrival


def test_failure_records_phase_and_a_bounded_summary(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build = new_build(session, tenant_id, agent)
        event(
            session,
            agent,
            1,
            contract.FINISHED_EVENT,
            {"build_id": build.id, "status": "FAILED", "failed_phase": "train", "error_summary": "x" * 5000},
        )
        session.refresh(build)
        assert build.status == "FAILED" and build.failed_phase == "train"
        assert build.error_summary is not None and len(build.error_summary) <= contract.ERROR_SUMMARY_MAX


def test_events_about_other_agents_builds_are_ignored(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build = new_build(session, tenant_id, agent)
        _row, token = create_join_token(
            session, tenant_id=tenant_id, name="other", ttl_seconds=600, max_ttl_seconds=3600, actor="t"
        )
        intruder = redeem_join_token(session, token=token)
        session.commit()
        event(session, intruder, 1, contract.FINISHED_EVENT, {"build_id": build.id, "status": "SUCCEEDED"})
        session.refresh(build)
        assert build.status == "QUEUED"


def test_filters_by_status_tag_and_metric(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        good = new_build(session, tenant_id, agent, tags=["nightly", "good"])
        weak = new_build(session, tenant_id, agent, tags=["nightly"])
        for seq, (build, accuracy) in enumerate([(good, 0.95), (weak, 0.6)], start=1):
            event(
                session,
                agent,
                seq,
                contract.FINISHED_EVENT,
                {"build_id": build.id, "status": "SUCCEEDED", "metrics": {"accuracy": accuracy}},
            )
        ids = lambda rows: {b.id for b in rows}  # noqa: E731
        assert ids(builds.list_builds(session, tenant_id=tenant_id, tag="good")) == {good.id}
        assert ids(builds.list_builds(session, tenant_id=tenant_id, metric="accuracy>0.9")) == {good.id}
        assert ids(builds.list_builds(session, tenant_id=tenant_id, metric="accuracy<=0.6")) == {weak.id}
        assert ids(builds.list_builds(session, tenant_id=tenant_id, status="succeeded", model="churn-model")) == {
            good.id,
            weak.id,
        }
        comparison = builds.compare_builds(weak, good)
        assert comparison["metric_delta"] == {"accuracy": pytest.approx(0.35)}
        with pytest.raises(InvalidInput, match="NAME>VALUE"):
            builds.list_builds(session, tenant_id=tenant_id, metric="accuracy is high")
        with pytest.raises(NotFound):
            builds.list_builds(session, tenant_id=tenant_id, model="nope")


def test_cancel_queues_a_cancel_command_and_refuses_finished_builds(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build = new_build(session, tenant_id, agent)
        builds.cancel_build(session, tenant_id=tenant_id, build_id=build.id, actor="t", command_ttl_seconds=60)
        session.commit()
        types = [c.type for c in session.exec(select(AgentCommand).where(col(AgentCommand.agent_id) == agent.id))]
        assert types.count(contract.CANCEL_COMMAND) == 1
        event(session, agent, 1, contract.FINISHED_EVENT, {"build_id": build.id, "status": "CANCELLED"})
        with pytest.raises(Conflict, match="already finished"):
            builds.cancel_build(session, tenant_id=tenant_id, build_id=build.id, actor="t", command_ttl_seconds=60)


def test_lease_expires_when_the_agent_vanishes(database_url: str) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build = new_build(session, tenant_id, agent)
        fresh = new_build(session, tenant_id, agent)
        long_ago = utcnow() - timedelta(minutes=10)
        build.created_at = long_ago
        agent.last_seen_at = long_ago
        session.add_all([build, agent])
        session.commit()
        assert builds.fail_expired_leases(session, lease_seconds=120) == [build.id]
        session.commit()
        session.refresh(build)
        session.refresh(fresh)
        assert build.status == "FAILED" and "lease expired" in (build.error_summary or "")
        assert fresh.status == "QUEUED"  # created just now: its lease has not run out
        # The agent coming back late cannot resurrect it.
        event(session, agent, 1, contract.FINISHED_EVENT, {"build_id": build.id, "status": "SUCCEEDED"})
        session.refresh(build)
        assert build.status == "FAILED"


@pytest.mark.parametrize(
    ("type_", "payload"),
    [
        (contract.PHASE_EVENT, {"phase": "train", "state": "started", "at_unix_ms": "soon"}),
        (contract.FINISHED_EVENT, {"status": "SUCCEEDED", "metrics": [1, 2]}),
        (contract.FINISHED_EVENT, {"status": "DONE-ISH"}),
        (contract.FINISHED_EVENT, {"status": "SUCCEEDED", "params": "C=1"}),
    ],
)
def test_a_malformed_build_event_is_stored_and_skipped_never_blocking_the_link(
    database_url: str, type_: str, payload: dict
) -> None:
    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build = new_build(session, tenant_id, agent)
        assert event(session, agent, 1, type_, {"build_id": build.id, **payload})  # applied: no exception
        session.refresh(build)
        assert build.status == "QUEUED" and build.phases_json == "[]"
        # The next, well-formed event still lands.
        event(session, agent, 2, contract.FINISHED_EVENT, {"build_id": build.id, "status": "SUCCEEDED"})
        session.refresh(build)
        assert build.status == "SUCCEEDED"


def test_a_build_run_the_agent_refuses_fails_the_build_with_its_reason(database_url: str) -> None:
    from control_plane.services.commands import record_ack

    with session_scope(database_url) as session:
        tenant_id, agent = world(session)
        build = new_build(session, tenant_id, agent)
        assert build.command_id is not None
        record_ack(
            session,
            agent_id=agent.id,
            command_id=build.command_id,
            ok=False,
            result_json="",
            error="this agent has no Docker engine",
        )
        session.commit()
        session.refresh(build)
        assert build.status == "FAILED"
        assert build.error_summary == "the agent refused the build: this agent has no Docker engine"
