"""One fleet size against one server process: connect, memory, idle CPU, round trips, heartbeat burst."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bench.fleet.processes import (
    Children,
    Swarms,
    busiest_thread_share,
    child_env,
    cpu_seconds,
    free_port,
    rss_kb,
    thread_cpu_seconds,
)
from bench.fleet.report import summary
from control_plane.db import session_scope
from control_plane.models import Agent, AgentCommand
from control_plane.services.commands import create_command

ACK_DEADLINE = 30.0


@dataclass(frozen=True)
class Plan:
    """Everything one run holds constant across fleet sizes."""

    home: Path
    database_url: str
    fleet_file: Path
    heartbeat_ms: int
    command_poll_ms: int | None
    commands: int
    command_rate: float
    burst_total: int
    client_procs: int
    connect_concurrency: int
    settle_seconds: float


def measure_gateway(children: Children, plan: Plan, n: int) -> dict[str, Any]:
    """`python -m control_plane.gateway` with N simulated agents; commands are rows in the database."""
    link, enroll = free_port(), free_port()
    env = {
        "MALLARD_CP_HOME": str(plan.home),
        "MALLARD_DATABASE_URL": plan.database_url,
        "MALLARD_GATEWAY_PORT": str(link),
        "MALLARD_GATEWAY_ENROLL_PORT": str(enroll),
        "MALLARD_HEARTBEAT_INTERVAL_MS": str(plan.heartbeat_ms),
    }
    if plan.command_poll_ms is not None:
        env["MALLARD_COMMAND_POLL_INTERVAL_MS"] = str(plan.command_poll_ms)
    server = children.start_server(
        f"gateway-{n}", [sys.executable, "-m", "control_plane.gateway"], child_env(env), [link, enroll]
    )
    try:
        return _measure(
            children,
            plan,
            n,
            server.pid,
            f"127.0.0.1:{link}",
            "mallard",
            lambda swarms, ids: _command_round_trips(plan, swarms, ids),
        )
    finally:
        server.stop()


def measure_peer(children: Children, plan: Plan, n: int) -> dict[str, Any]:
    """The grpc.aio echo server with the same mTLS and N streams doing ping/pong."""
    port = free_port()
    server = children.start_server(
        f"peer-{n}",
        [sys.executable, "-m", "bench.fleet.echo_server", "--port", str(port), "--home", str(plan.home)],
        child_env({}),
        [port],
    )
    try:
        return _measure(
            children,
            plan,
            n,
            server.pid,
            f"127.0.0.1:{port}",
            "echo",
            lambda swarms, _ids: _ping_round_trips(plan, swarms),
        )
    finally:
        server.stop()


def _measure(
    children: Children,
    plan: Plan,
    n: int,
    pid: int,
    target: str,
    mode: str,
    round_trips: Callable[[Swarms, list[str]], dict[str, Any]],
) -> dict[str, Any]:
    time.sleep(plan.settle_seconds)  # a fresh server settles to its idle footprint before the baseline
    rss_before = rss_kb(pid)
    swarms = Swarms.start(
        children,
        name=f"{mode}-{n}",
        mode=mode,
        target=target,
        ca=plan.home / "pki" / "ca.crt",
        fleet=plan.fleet_file,
        agents=n,
        procs=plan.client_procs,
        heartbeat_ms=plan.heartbeat_ms,
    )
    try:
        replies = swarms.ask("connect", concurrency=max(1, plan.connect_concurrency // plan.client_procs))
        connected = sum(r["connected"] for r in replies)
        agent_ids = [a for r in replies for a in r["agent_ids"]]
        errors: dict[str, int] = {}
        for reply in replies:
            for name, count in reply["errors"].items():
                errors[name] = errors.get(name, 0) + count
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        time.sleep(plan.settle_seconds)
        idle_cpu = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - started)
        rss_connected = rss_kb(pid)
        result: dict[str, Any] = {
            "connected": connected,
            "connect_errors": errors,
            "connect_seconds": max(r["seconds"] for r in replies),
            "rss_before_kib": rss_before,
            "rss_connected_kib": rss_connected,
            "kib_per_agent": (rss_connected - rss_before) / connected if connected else 0.0,
            "idle_cpu_pct": idle_cpu * 100,
        }
        if connected:
            result.update(round_trips(swarms, agent_ids))
            result["heartbeats"] = _heartbeat_burst(plan, swarms, pid, connected, idle_cpu)
        else:  # nothing to measure; the table shows dashes
            empty = summary([])
            result.update(
                round_trip_ms=empty,
                insert_ms=empty,
                to_agent_ms=empty,
                receipt_at_agent_ms=empty,
                commands_sent=0,
                commands_unacked=0,
                heartbeats={"per_second": None, "server_cpu_us_per_heartbeat": None},
            )
        result["lost_streams"] = sum(r["lost"] for r in swarms.ask("status"))
        return result
    finally:
        swarms.stop()


def _command_round_trips(plan: Plan, swarms: Swarms, agent_ids: list[str]) -> dict[str, Any]:
    """Insert commands the way the API does (one transaction each) at a steady rate on random agents."""
    rng = random.Random(20)
    created: list[str] = []
    committed: dict[str, float] = {}
    started = time.monotonic()
    for k in range(plan.commands):
        time.sleep(max(0.0, started + k / plan.command_rate - time.monotonic()))
        with session_scope(plan.database_url) as session:
            agent = session.get(Agent, rng.choice(agent_ids))
            assert agent is not None
            command = create_command(session, agent=agent, type_="ping", spec={}, actor="bench", ttl_seconds=600)
            session.commit()
            committed[command.id] = time.time()
            created.append(command.id)
    deadline = time.monotonic() + ACK_DEADLINE
    rows: list[AgentCommand] = []
    while time.monotonic() < deadline:
        with session_scope(plan.database_url) as session:
            rows = list(session.exec(select(AgentCommand).where(col(AgentCommand.id).in_(created))))
        if all(r.acked_at is not None for r in rows):
            break
        time.sleep(0.1)
    times: dict[str, dict[str, float]] = {"received": {}, "receipts": {}}
    for reply in swarms.ask("commands"):
        times["received"].update(reply["received"])
        times["receipts"].update(reply["receipts"])
    recorded, from_commit, inserted, to_agent, receipt = [], [], [], [], []
    for row in rows:
        start = row.created_at.timestamp()
        inserted.append((committed[row.id] - start) * 1000)
        if row.acked_at is not None:
            recorded.append((row.acked_at.timestamp() - start) * 1000)
            from_commit.append((row.acked_at.timestamp() - committed[row.id]) * 1000)
        if row.id in times["received"]:
            to_agent.append((times["received"][row.id] - start) * 1000)
        if row.id in times["receipts"]:
            receipt.append((times["receipts"][row.id] - start) * 1000)
    return {
        "round_trip_ms": summary(recorded),
        "insert_ms": summary(inserted),
        # The same round trip without the insert's own wait (for SQLite's write lock, say).
        "round_trip_from_commit_ms": summary(from_commit),
        "to_agent_ms": summary(to_agent),
        "receipt_at_agent_ms": summary(receipt),
        "commands_sent": len(created),
        "commands_unacked": len(created) - len(recorded),
    }


def _ping_round_trips(plan: Plan, swarms: Swarms) -> dict[str, Any]:
    procs = len(swarms.processes)
    replies = swarms.ask("ping", count=plan.commands // procs, rate=plan.command_rate / procs)
    rtts = [v for r in replies for v in r["rtts_ms"]]
    return {
        "round_trip_ms": summary(rtts),
        "commands_sent": len(rtts) + sum(r["unanswered"] for r in replies),
        "commands_unacked": sum(r["unanswered"] for r in replies),
    }


def _heartbeat_burst(plan: Plan, swarms: Swarms, pid: int, streams: int, idle_cpu: float) -> dict[str, Any]:
    """Heartbeats consumed per second: (burst time - markers-only time) for a fixed number of heartbeats.

    The CPU cost per heartbeat is the server's CPU time during the burst above its idle rate
    (periodic loops keep running during the burst), divided by the heartbeats.
    """
    per_agent = max(1, plan.burst_total // streams)
    baseline = swarms.ask("burst", per_agent=0)
    cpu_before, client_before = cpu_seconds(pid), swarms.cpu_seconds()
    threads_before, client_threads_before = thread_cpu_seconds(pid), swarms.thread_cpu_seconds()
    burst = swarms.ask("burst", per_agent=per_agent)
    seconds = max(r["seconds"] for r in burst)
    server_cpu = (cpu_seconds(pid) - cpu_before) / seconds
    client_cpu = (swarms.cpu_seconds() - client_before) / seconds
    server_thread = busiest_thread_share(threads_before, thread_cpu_seconds(pid), seconds)
    client_thread = busiest_thread_share(client_threads_before, swarms.thread_cpu_seconds(), seconds)
    markers_seconds = max(r["seconds"] for r in baseline)
    heartbeats = sum(r["heartbeats"] for r in burst)
    server_cpu_seconds = server_cpu * seconds
    complete = sum(r["markers"] for r in burst) == sum(r["streams"] for r in burst)
    consumed_seconds = seconds - markers_seconds
    return {
        "sent": heartbeats,
        "per_agent": per_agent,
        "burst_seconds": seconds,
        "markers_only_seconds": markers_seconds,
        "per_second": heartbeats / consumed_seconds if complete and consumed_seconds > 0 else None,
        "complete": complete,
        "server_cpu_pct": server_cpu * 100,
        # What one heartbeat costs the server, whoever else competes for the CPUs.
        "server_cpu_us_per_heartbeat": max(0.0, server_cpu_seconds - idle_cpu * seconds) / heartbeats * 1e6,
        "client_cpu_pct": client_cpu * 100,
        "server_busiest_thread_pct": server_thread * 100,
        "client_busiest_thread_pct": client_thread * 100,
    }
