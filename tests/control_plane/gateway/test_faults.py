"""Crashes and restarts lose nothing acknowledged and apply nothing twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import col, select

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCommand, AgentEvent
from control_plane.services.commands import create_command
from data_plane_agent.link.outbox import Outbox
from tests.helpers.factories import make_join_token, make_tenant
from tests.helpers.servers import wait_for
from tests.helpers.stack import AgentProcess, ControlPlane

pytestmark = pytest.mark.slow


def start_agent(cp: ControlPlane, tmp_path: Path) -> tuple[AgentProcess, str]:
    tenant = make_tenant(cp.database_url, "acme")
    agent = AgentProcess(cp, tmp_path / "agent", join_token=make_join_token(cp.database_url, tenant))
    agent.start()
    agent_id = agent.wait_enrolled()
    wait_for(lambda: connected(cp, agent_id), timeout=20, what="agent connected")
    return agent, agent_id


def connected(cp: ControlPlane, agent_id: str) -> bool:
    with session_scope(cp.database_url) as session:
        agent = session.get(Agent, agent_id)
        return bool(agent and agent.connected)


def events_of(cp: ControlPlane, agent_id: str, type_: str) -> list[AgentEvent]:
    with session_scope(cp.database_url) as session:
        return list(
            session.exec(
                select(AgentEvent).where(col(AgentEvent.agent_id) == agent_id).where(col(AgentEvent.type) == type_)
            )
        )


def test_gateway_kill9_while_events_flow_loses_and_duplicates_nothing(gateway: ControlPlane, tmp_path: Path) -> None:
    agent, agent_id = start_agent(gateway, tmp_path)
    outbox = Outbox(agent.home / "state.db")
    total = 400
    for i in range(total // 2):
        outbox.append("test.tick", {"i": i})
    # Kill the gateway as soon as some (not all) of the first half are applied.
    wait_for(lambda: len(events_of(gateway, agent_id, "test.tick")) >= 20, timeout=20, what="first events applied")
    assert gateway.gateway is not None
    gateway.gateway.kill9()
    for i in range(total // 2, total):
        outbox.append("test.tick", {"i": i})
    gateway.start_gateway()
    wait_for(lambda: outbox.pending_count() == 0, timeout=60, what="outbox drained after the gateway restart")
    ticks = events_of(gateway, agent_id, "test.tick")
    assert sorted(json.loads(e.payload_json)["i"] for e in ticks) == list(range(total))
    outbox.close()


def test_gateway_kill9_with_a_command_in_flight_runs_it_once(gateway: ControlPlane, tmp_path: Path) -> None:
    _agent, agent_id = start_agent(gateway, tmp_path)
    with session_scope(gateway.database_url) as session:
        row = session.get(Agent, agent_id)
        assert row is not None
        command = create_command(
            session, agent=row, type_="ping", spec={"delay_seconds": 1.5}, actor="test", ttl_seconds=120
        )
        session.commit()
        command_id = command.id

    def state() -> str:
        with session_scope(gateway.database_url) as session:
            cmd = session.get(AgentCommand, command_id)
            assert cmd is not None
            return cmd.state

    wait_for(lambda: state() == "delivered", timeout=20, what="command delivered")
    assert gateway.gateway is not None
    gateway.gateway.kill9()  # the agent is mid-way through the 1.5 s command
    gateway.start_gateway()
    wait_for(lambda: state() == "succeeded", timeout=60, what="command acked after the gateway restart")
    with session_scope(gateway.database_url) as session:
        cmd = session.get(AgentCommand, command_id)
        assert cmd is not None and json.loads(cmd.result_json or "{}")["pong"] is True
        assert cmd.delivery_count >= 2  # redelivered after the reconnect ...
    started = [
        e
        for e in events_of(gateway, agent_id, "command.started")
        if json.loads(e.payload_json)["command_id"] == command_id
    ]
    assert len(started) == 1  # ... but executed exactly once


def test_agent_restart_with_unsent_events_delivers_each_exactly_once(gateway: ControlPlane, tmp_path: Path) -> None:
    agent, agent_id = start_agent(gateway, tmp_path)
    assert agent.proc is not None and gateway.gateway is not None
    gateway.gateway.terminate()  # the control plane is away: events pile up locally
    outbox = Outbox(agent.home / "state.db")
    for i in range(150):
        outbox.append("test.offline", {"i": i})
    assert agent.proc.terminate(timeout=20) == 0
    assert outbox.pending_count() >= 150
    outbox.close()

    gateway.start_gateway()
    agent.join_token = ""  # already enrolled
    agent.start()
    outbox = Outbox(agent.home / "state.db")
    wait_for(lambda: outbox.pending_count() == 0, timeout=60, what="outbox drained after the agent restart")
    events = events_of(gateway, agent_id, "test.offline")
    assert sorted(json.loads(e.payload_json)["i"] for e in events) == list(range(150))
    outbox.close()


def test_agent_kill9_mid_command_does_not_rerun_it(gateway: ControlPlane, tmp_path: Path) -> None:
    agent, agent_id = start_agent(gateway, tmp_path)
    with session_scope(gateway.database_url) as session:
        row = session.get(Agent, agent_id)
        assert row is not None
        command_id = create_command(
            session, agent=row, type_="ping", spec={"delay_seconds": 5}, actor="test", ttl_seconds=120
        ).id
        session.commit()
    wait_for(
        lambda: any(
            json.loads(e.payload_json)["command_id"] == command_id
            for e in events_of(gateway, agent_id, "command.started")
        ),
        timeout=20,
        what="the command to start on the agent",
    )
    assert agent.proc is not None
    agent.proc.kill9()
    agent.join_token = ""
    agent.start()

    def final() -> AgentCommand | None:
        with session_scope(gateway.database_url) as session:
            cmd = session.get(AgentCommand, command_id)
            return cmd if cmd and cmd.state in ("succeeded", "failed") else None

    cmd = wait_for(final, timeout=30, what="the interrupted command to be acked")
    assert isinstance(cmd, AgentCommand)
    assert cmd.state == "failed" and "not run again" in (cmd.error or "")
    started = [
        e
        for e in events_of(gateway, agent_id, "command.started")
        if json.loads(e.payload_json)["command_id"] == command_id
    ]
    assert len(started) == 1


def test_max_connection_age_recycles_connections_without_losing_events(sqlite_url: str, tmp_path: Path) -> None:
    cp = ControlPlane(
        database_url=sqlite_url,
        home=tmp_path / "cp",
        extra_env={"MALLARD_MAX_CONNECTION_AGE_SECONDS": "2", "MALLARD_MAX_CONNECTION_AGE_GRACE_SECONDS": "1"},
    )
    cp.prepare()
    gateway = cp.start_gateway()
    agent, agent_id = start_agent(cp, tmp_path)
    outbox = Outbox(agent.home / "state.db")
    for i in range(100):
        outbox.append("test.recycled", {"i": i})
    # Each connection lives ~2-3 s, so within 12 s the agent has re-handshaken several times.
    wait_for(lambda: gateway.output().count(f"agent {agent_id} connected") >= 3, timeout=20, what="3 connections")
    wait_for(lambda: outbox.pending_count() == 0, timeout=20, what="outbox drained")
    events = events_of(cp, agent_id, "test.recycled")
    assert sorted(json.loads(e.payload_json)["i"] for e in events) == list(range(100))
    outbox.close()
    cp.stop()


def test_agent_that_stops_heartbeating_goes_offline_then_recovers(gateway: ControlPlane, tmp_path: Path) -> None:
    """A frozen agent keeps its TCP connection but misses heartbeats: offline after 3 intervals."""
    import os
    import signal

    from control_plane.services.agents import agent_status

    agent, agent_id = start_agent(gateway, tmp_path)
    offline_after = gateway.heartbeat_ms / 1000 * 3

    def status() -> str:
        with session_scope(gateway.database_url) as session:
            row = session.get(Agent, agent_id)
            assert row is not None
            return agent_status(row, offline_after_seconds=offline_after)

    wait_for(lambda: status() == "online", timeout=10, what="online")
    assert agent.proc is not None and agent.proc.popen is not None
    os.kill(agent.proc.popen.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: status() == "offline", timeout=offline_after + 5, what="offline after missed heartbeats")
    finally:
        os.kill(agent.proc.popen.pid, signal.SIGCONT)
    wait_for(lambda: status() == "online", timeout=15, what="online again after the agent resumes")
