"""Rows the scheduler tests start from, written straight to a real database."""

from __future__ import annotations

from datetime import datetime, timedelta

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCommand, JoinToken, Tenant, new_id, utcnow


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def tenant(url: str) -> str:
    with session_scope(url) as session:
        row = Tenant(name=new_id("t").replace("_", "-"))
        session.add(row)
        session.commit()
        return row.id


def agent(url: str, tenant_id: str, *, status: str = "online", last_seen_at: datetime | None = None) -> str:
    with session_scope(url) as session:
        row = Agent(
            tenant_id=tenant_id, name="edge", status=status, connected=status == "online", last_seen_at=last_seen_at
        )
        session.add(row)
        session.commit()
        return row.id


def command(url: str, agent_id: str, tenant_id: str, *, expires_at: datetime, state: str = "pending") -> str:
    with session_scope(url) as session:
        row = AgentCommand(
            tenant_id=tenant_id,
            agent_id=agent_id,
            type="describe",
            created_by="test",
            expires_at=expires_at,
            state=state,
        )
        session.add(row)
        session.commit()
        return row.id


def join_token(
    url: str,
    tenant_id: str,
    *,
    expires_at: datetime,
    redeemed_at: datetime | None = None,
    revoked_at: datetime | None = None,
) -> str:
    with session_scope(url) as session:
        row = JoinToken(
            tenant_id=tenant_id,
            name="edge",
            secret_hash="0" * 64,
            created_by="test",
            expires_at=expires_at,
            redeemed_at=redeemed_at,
            revoked_at=revoked_at,
        )
        session.add(row)
        session.commit()
        return row.id
