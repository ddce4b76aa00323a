"""API keys: `mk.<key id>.<secret>`, only the secret's SHA-256 is stored, scoped to one tenant."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from control_plane.models import ApiKey, Membership, User, utcnow
from control_plane.models.common import iso
from control_plane.services import audit
from control_plane.services.secrets import format_token, hash_secret, new_secret, parse_token, secret_matches
from shared.errors import NotFound, Unauthenticated

KEY_KIND = "mk"
# Writing last_used_at on every request would turn every read into a write; a minute is
# precise enough to tell which keys are still in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_status(key: ApiKey) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= utcnow():
        return "expired"
    return "active"


def create_api_key(
    session: Session, *, tenant_id: str, user_id: str, name: str, expires_in_days: int | None, actor: str
) -> tuple[ApiKey, str]:
    """Create a key for a member of `tenant_id`; returns it with its plaintext, shown exactly once."""
    secret = new_secret()
    key = ApiKey(
        user_id=user_id,
        tenant_id=tenant_id,
        name=name,
        secret_hash=hash_secret(secret),
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    session.add(key)
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="api_key.create",
        target_type="api_key",
        target_id=key.id,
        details={"user_id": user_id, "name": name, "expires_at": iso(key.expires_at)},
    )
    return key, format_token(KEY_KIND, key.id, secret)


def authenticate(session: Session, token: str) -> tuple[ApiKey, User, Membership]:
    """Resolve a presented key to its row, user and membership, or raise Unauthenticated."""
    key_id, secret = parse_token(token, KEY_KIND, "API key")
    key = session.get(ApiKey, key_id)
    if key is None or not secret_matches(secret, key.secret_hash):
        raise Unauthenticated("API key not recognised; check MALLARD_API_KEY or create a new key")
    if key.revoked_at is not None:
        raise Unauthenticated(f"API key {key.id} has been revoked; ask a tenant admin for a new key")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise Unauthenticated(f"API key {key.id} expired at {iso(key.expires_at)}; create a new key")
    membership = session.exec(
        select(Membership)
        .where(col(Membership.user_id) == key.user_id)
        .where(col(Membership.tenant_id) == key.tenant_id)
    ).first()
    user = session.get(User, key.user_id)
    if membership is None or user is None:
        raise Unauthenticated(f"the owner of API key {key.id} is no longer a member of its tenant")
    return key, user, membership


def touch(session: Session, key: ApiKey) -> bool:
    """Record that `key` was used, at most once per LAST_USED_RESOLUTION. Returns True if written."""
    now = utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return False
    # Conditional, so concurrent requests with the same key write once, not once each.
    result = session.execute(
        update(ApiKey)
        .where(col(ApiKey.id) == key.id)
        .where(or_(col(ApiKey.last_used_at).is_(None), col(ApiKey.last_used_at) < now - LAST_USED_RESOLUTION))
        .values(last_used_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_api_keys(session: Session, *, tenant_id: str, user_id: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).where(col(ApiKey.tenant_id) == tenant_id)
    if user_id is not None:
        query = query.where(col(ApiKey.user_id) == user_id)
    return list(session.exec(query.order_by(col(ApiKey.created_at), col(ApiKey.id))))


def get_api_key(session: Session, *, tenant_id: str, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None or key.tenant_id != tenant_id:
        raise NotFound(f"API key {key_id} not found", field="key_id")
    return key


def revoke_api_key(session: Session, key: ApiKey, *, actor: str) -> ApiKey:
    """Revoke `key` (idempotent: revoking twice keeps the first time)."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        audit.record(
            session,
            tenant_id=key.tenant_id,
            actor=actor,
            action="api_key.revoke",
            target_type="api_key",
            target_id=key.id,
            details={"user_id": key.user_id},
        )
    return key


def revoke_user_keys(session: Session, *, tenant_id: str, user_id: str, actor: str) -> int:
    """Revoke every live key `user_id` holds in `tenant_id`; returns how many."""
    keys = [k for k in list_api_keys(session, tenant_id=tenant_id, user_id=user_id) if k.revoked_at is None]
    for key in keys:
        revoke_api_key(session, key, actor=actor)
    return len(keys)
