"""Durable per-agent commands: created by the API, delivered by the gateway, acked by the agent."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from control_plane.models import Agent, AgentCommand, utcnow
from control_plane.services import audit
from shared.errors import Conflict, InvalidInput, NotFound

# Command types an agent understands, with the spec keys each accepts.
COMMAND_TYPES: dict[str, set[str]] = {
    "describe": set(),
    "ping": {"delay_seconds"},
}
# Sent only by the control plane itself (e.g. when a build is created), never through
# POST /agents/{id}/commands.
INTERNAL_COMMAND_TYPES: dict[str, set[str]] = {
    "build.run": {"build_id", "tenant_id", "model", "context_digest", "builder", "params", "tags"},
    "build.cancel": {"build_id"},
    "deployment.apply": {
        "deployment_id",
        "name",
        "model",
        "model_id",
        "project_id",
        "kind",
        "runtime",
        "revision",
        "logging",
        "timeout_ms",
        "variations",
        "batch",
        "streaming",
    },
    "deployment.delete": {"deployment_id"},
    "features.apply": {"tenant_id", "definitions"},
    "features.materialize": {"job_id", "tenant_id", "project", "name", "version", "start", "end"},
}
OPEN_STATES = ("pending", "delivered")
FINAL_STATES = ("succeeded", "failed", "expired")


def validate_spec(type_: str, spec: dict[str, Any], *, internal: bool = False) -> dict[str, Any]:
    if internal and type_ in INTERNAL_COMMAND_TYPES:
        unknown = set(spec) - INTERNAL_COMMAND_TYPES[type_]
        if unknown:
            raise InvalidInput(f"unknown spec field(s) for {type_}: {', '.join(sorted(unknown))}", field="spec")
        return spec
    if type_ not in COMMAND_TYPES:
        raise InvalidInput(f"unknown command type {type_!r}; known: {', '.join(sorted(COMMAND_TYPES))}", field="type")
    if not isinstance(spec, dict):
        raise InvalidInput("spec must be a JSON object", field="spec")
    unknown = set(spec) - COMMAND_TYPES[type_]
    if unknown:
        raise InvalidInput(f"unknown spec field(s) for {type_}: {', '.join(sorted(unknown))}", field="spec")
    if type_ == "ping" and "delay_seconds" in spec:
        delay = spec["delay_seconds"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 60:
            raise InvalidInput("spec.delay_seconds must be a number between 0 and 60", field="spec.delay_seconds")
    return spec


def create_command(
    session: Session,
    *,
    agent: Agent,
    type_: str,
    spec: dict[str, Any],
    actor: str,
    ttl_seconds: int,
    internal: bool = False,
) -> AgentCommand:
    validate_spec(type_, spec, internal=internal)
    if agent.revoked_at is not None:
        raise Conflict(f"agent {agent.id} has been revoked and cannot receive commands", field="agent_id")
    command = AgentCommand(
        tenant_id=agent.tenant_id,
        agent_id=agent.id,
        type=type_,
        spec_json=json.dumps(spec),
        created_by=actor,
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    )
    session.add(command)
    audit.record(
        session,
        tenant_id=agent.tenant_id,
        actor=actor,
        action="command.create",
        target_type="command",
        target_id=command.id,
        details={"agent_id": agent.id, "type": type_},
    )
    return command


def get_command(session: Session, *, tenant_id: str, command_id: str) -> AgentCommand:
    command = session.get(AgentCommand, command_id)
    if command is None or command.tenant_id != tenant_id:
        raise NotFound(f"command {command_id} not found", field="command_id")
    return command


def open_commands(session: Session, agent_ids: list[str]) -> list[AgentCommand]:
    """Commands not yet acked for these agents, oldest first (redelivered after reconnects)."""
    if not agent_ids:
        return []
    now = utcnow()
    rows: list[AgentCommand] = []
    for start in range(0, len(agent_ids), 500):
        rows.extend(
            session.exec(
                select(AgentCommand)
                .where(col(AgentCommand.agent_id).in_(agent_ids[start : start + 500]))
                .where(col(AgentCommand.state).in_(OPEN_STATES))
                .where(col(AgentCommand.expires_at) > now)
                .order_by(col(AgentCommand.created_at))
            )
        )
    return rows


def mark_delivered(session: Session, command_ids: list[str]) -> None:
    if not command_ids:
        return
    now = utcnow()
    session.execute(
        update(AgentCommand)
        .where(col(AgentCommand.id).in_(command_ids))
        .where(col(AgentCommand.state).in_(OPEN_STATES))
        .values(state="delivered", delivered_at=now, delivery_count=AgentCommand.delivery_count + 1)
    )


def record_ack(session: Session, *, agent_id: str, command_id: str, ok: bool, result_json: str, error: str) -> bool:
    """Record the agent's ack once; later duplicates change nothing. Returns True if recorded."""
    if result_json:
        try:
            json.loads(result_json)
        except ValueError:
            ok, error, result_json = False, "agent sent a result that is not JSON", ""
    result = session.execute(
        update(AgentCommand)
        .where(col(AgentCommand.id) == command_id)
        .where(col(AgentCommand.agent_id) == agent_id)
        .where(col(AgentCommand.state).in_(OPEN_STATES))
        .values(
            state="succeeded" if ok else "failed",
            result_json=result_json or None,
            error=(error or None) if not ok else None,
            acked_at=utcnow(),
        )
    )
    recorded = bool(result.rowcount)  # type: ignore[attr-defined]
    if recorded:
        acked = session.get(AgentCommand, command_id)
        if acked is not None and acked.type == "features.apply":
            from control_plane.services.features import record_apply_ack

            record_apply_ack(session, command_id=command_id, ok=ok, error=error)
    if recorded and not ok:
        command = session.get(AgentCommand, command_id)
        if command is not None and command.type == "build.run":
            from control_plane.services.builds import fail_refused_build

            build_id = json.loads(command.spec_json or "{}").get("build_id", "")
            fail_refused_build(session, agent_id=agent_id, build_id=str(build_id), error=error)
        elif command is not None and command.type == "deployment.apply":
            from control_plane.services.deployments import fail_refused_apply

            fail_refused_apply(session, agent_id=agent_id, spec=json.loads(command.spec_json or "{}"), error=error)
        elif command is not None and command.type == "features.materialize":
            from control_plane.services.features import fail_refused_materialization

            job_id = json.loads(command.spec_json or "{}").get("job_id", "")
            fail_refused_materialization(session, agent_id=agent_id, job_id=str(job_id), error=error)
    return recorded


def expire_commands(session: Session) -> list[str]:
    """Open commands past their deadline become `expired`."""
    now = utcnow()
    ids = list(
        session.exec(
            select(AgentCommand.id)
            .where(col(AgentCommand.state).in_(OPEN_STATES))
            .where(col(AgentCommand.expires_at) <= now)
        )
    )
    if ids:
        session.execute(
            update(AgentCommand)
            .where(col(AgentCommand.id).in_(ids))
            .where(col(AgentCommand.state).in_(OPEN_STATES))
            .values(state="expired", error="command expired before the agent acknowledged it")
        )
    return ids


def command_view(command: AgentCommand) -> dict[str, Any]:
    from control_plane.models.common import iso

    return {
        "id": command.id,
        "agent_id": command.agent_id,
        "type": command.type,
        "spec": json.loads(command.spec_json or "{}"),
        "state": command.state,
        "result": json.loads(command.result_json) if command.result_json else None,
        "error": command.error,
        "created_by": command.created_by,
        "created_at": iso(command.created_at),
        "delivered_at": iso(command.delivered_at),
        "delivery_count": command.delivery_count,
        "acked_at": iso(command.acked_at),
        "expires_at": iso(command.expires_at),
    }


def pending_commands(session: Session, *, limit: int = 1000) -> list[AgentCommand]:
    """Commands never delivered yet, across agents; the gateway filters by who is connected here."""
    return list(
        session.exec(
            select(AgentCommand)
            .where(col(AgentCommand.state) == "pending")
            .where(col(AgentCommand.expires_at) > utcnow())
            .order_by(col(AgentCommand.created_at))
            .limit(limit)
        )
    )
