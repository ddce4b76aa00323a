"""Join tokens: one-time, short-lived, stored hashed, redeemed atomically."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from control_plane.models import Agent, JoinToken, utcnow
from control_plane.services import audit
from control_plane.services.secrets import format_token, hash_secret, new_secret, parse_token, secret_matches
from shared.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated

TOKEN_KIND = "mjt"
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def validate_name(name: str, field: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(
            f"{field} {name!r} is not valid: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
            field=field,
        )
    return name


def create_join_token(
    session: Session, *, tenant_id: str, name: str, ttl_seconds: int, max_ttl_seconds: int, actor: str
) -> tuple[JoinToken, str]:
    """Create a token and return it with its plaintext, which is shown exactly once."""
    validate_name(name)
    if ttl_seconds < 60 or ttl_seconds > max_ttl_seconds:
        raise InvalidInput(f"ttl must be between 60 and {max_ttl_seconds} seconds, got {ttl_seconds}", field="ttl")
    secret = new_secret()
    token = JoinToken(
        tenant_id=tenant_id,
        name=name,
        secret_hash=hash_secret(secret),
        created_by=actor,
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    )
    session.add(token)
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="join_token.create",
        target_type="join_token",
        target_id=token.id,
        details={"name": name, "ttl_seconds": ttl_seconds},
    )
    return token, format_token(TOKEN_KIND, token.id, secret)


def redeem_join_token(
    session: Session, *, token: str, expected_tenant_id: str = "", hostname: str = "", version: str = ""
) -> Agent:
    """Redeem `token` once and create the agent it enrolls. The caller commits.

    The conditional UPDATE is the atomicity guarantee: of two concurrent redemptions
    exactly one sees rowcount 1, on SQLite and PostgreSQL alike.
    """
    token_id, secret = parse_token(token, TOKEN_KIND, "join token")
    row = session.get(JoinToken, token_id)
    if row is None or not secret_matches(secret, row.secret_hash):
        raise Unauthenticated("join token not recognised; create a new one with `mallard agents token create`")
    if expected_tenant_id and row.tenant_id != expected_tenant_id:
        raise PermissionDenied(f"join token belongs to another tenant, not {expected_tenant_id}", field="join_token")
    now = utcnow()
    if row.revoked_at is not None:
        raise PermissionDenied("join token has been revoked", field="join_token")
    if row.redeemed_at is not None:
        raise PermissionDenied("join token has already been used; each token enrolls one agent", field="join_token")
    if row.expires_at <= now:
        raise PermissionDenied(f"join token expired at {row.expires_at.isoformat()}", field="join_token")
    agent = Agent(tenant_id=row.tenant_id, name=row.name, hostname=hostname[:255], version=version[:40])
    result = session.execute(
        update(JoinToken)
        .where(col(JoinToken.id) == token_id)
        .where(col(JoinToken.redeemed_at).is_(None))
        .where(col(JoinToken.revoked_at).is_(None))
        .where(col(JoinToken.expires_at) > now)
        .values(redeemed_at=now, agent_id=agent.id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise PermissionDenied("join token has already been used; each token enrolls one agent", field="join_token")
    session.add(agent)
    audit.record(
        session,
        tenant_id=row.tenant_id,
        actor=f"join_token:{row.id}",
        action="agent.enroll",
        target_type="agent",
        target_id=agent.id,
        details={"hostname": hostname, "version": version},
    )
    return agent


def join_token_status(token: JoinToken) -> str:
    """active | redeemed | expired | revoked (redeemed wins: the agent it enrolled exists)."""
    if token.redeemed_at is not None:
        return "redeemed"
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at <= utcnow():
        return "expired"
    return "active"


def list_join_tokens(session: Session, *, tenant_id: str) -> list[JoinToken]:
    return list(
        session.exec(
            select(JoinToken).where(col(JoinToken.tenant_id) == tenant_id).order_by(col(JoinToken.created_at).desc())
        )
    )


def get_join_token(session: Session, *, tenant_id: str, token_id: str) -> JoinToken:
    token = session.get(JoinToken, token_id)
    if token is None or token.tenant_id != tenant_id:
        raise NotFound(f"join token {token_id} not found", field="token_id")
    return token


def revoke_join_token(session: Session, *, tenant_id: str, token_id: str, actor: str) -> JoinToken:
    """Revoke an unused token (idempotent). A redeemed token is refused: revoke its agent instead."""
    token = get_join_token(session, tenant_id=tenant_id, token_id=token_id)
    if token.revoked_at is not None:
        return token
    # Conditional, like redemption, so a token cannot be both redeemed and revoked.
    result = session.execute(
        update(JoinToken)
        .where(col(JoinToken.id) == token.id)
        .where(col(JoinToken.redeemed_at).is_(None))
        .where(col(JoinToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    session.refresh(token)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if token.redeemed_at is not None:
            raise Conflict(
                f"join token {token.id} was already used to enroll agent {token.agent_id}; revoke the agent instead",
                field="token_id",
            )
        return token
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="join_token.revoke",
        target_type="join_token",
        target_id=token.id,
    )
    return token
