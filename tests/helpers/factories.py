"""Create control-plane rows directly, for tests that exercise the gateway without the API."""

from __future__ import annotations

from datetime import timedelta

from control_plane.db import session_scope
from control_plane.models import Tenant, utcnow
from control_plane.models.agents import JoinToken
from control_plane.services.join_tokens import create_join_token


def make_tenant(url: str, name: str) -> str:
    with session_scope(url) as session:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.commit()
        return tenant.id


def make_join_token(url: str, tenant_id: str, *, name: str = "agent", ttl_seconds: int = 900) -> str:
    with session_scope(url) as session:
        _row, token = create_join_token(
            session, tenant_id=tenant_id, name=name, ttl_seconds=ttl_seconds, max_ttl_seconds=86400, actor="test"
        )
        session.commit()
        return token


def expire_join_token(url: str, token: str) -> None:
    token_id = token.split(".")[1]
    with session_scope(url) as session:
        row = session.get(JoinToken, token_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
        session.commit()
