"""Users and their membership (with a role) in a tenant."""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control_plane.models import Membership, Role, User
from control_plane.services import api_keys, audit
from shared.errors import Conflict, InvalidInput, NotFound

# Deliberately loose: the address is an identifier here, not something we deliver mail to, and
# local installs use dotless domains (`mallard dev up` bootstraps admin@localhost).
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


def normalise_email(email: str, field: str = "email") -> str:
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise InvalidInput(f"{field} {email!r} is not a valid email address", field=field)
    return email


def add_member(
    session: Session, *, tenant_id: str, email: str, name: str, role: Role, actor: str, email_field: str = "email"
) -> tuple[User, Membership]:
    """Give the user with `email` (created if new) `role` in `tenant_id`.

    A user belongs to one tenant at a time. Attaching a user of another tenant (or a platform
    admin) would let this tenant's admins mint keys for them and act as them, so that is refused;
    only a user who is in no tenant any more (removed, keys revoked) may be added back.
    """
    email = normalise_email(email, email_field)
    user = session.exec(select(User).where(col(User.email) == email)).first()
    if user is None:
        user = User(email=email, name=name)
        session.add(user)
        # Flushed on its own: the unit of work does not order inserts by foreign key without
        # relationships, and the membership below references this row.
        _flush_or_conflict(session, f"{email} was registered by a concurrent request; retry", email_field)
    else:
        elsewhere = session.exec(select(Membership.tenant_id).where(col(Membership.user_id) == user.id)).all()
        if tenant_id in elsewhere:
            raise Conflict(f"{email} is already a member of this tenant", field=email_field)
        if elsewhere or user.is_platform_admin:
            raise Conflict(
                f"{email} is already registered; a user belongs to one tenant, use another address",
                field=email_field,
            )
        # A user removed from every tenant (keys revoked) may be added back.
    membership = Membership(user_id=user.id, tenant_id=tenant_id, role=role.value)
    session.add(membership)
    _flush_or_conflict(session, f"{email} is already a member of this tenant", email_field)
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="user.add",
        target_type="user",
        target_id=user.id,
        details={"email": email, "role": role.value},
    )
    return user, membership


def _flush_or_conflict(session: Session, message: str, field: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(message, field=field) from exc


def list_members(session: Session, *, tenant_id: str) -> list[tuple[User, Membership]]:
    rows = session.exec(
        select(User, Membership)
        .where(col(Membership.user_id) == col(User.id))
        .where(col(Membership.tenant_id) == tenant_id)
        .order_by(col(Membership.created_at), col(User.id))
    )
    return [(user, membership) for user, membership in rows]


def get_member(session: Session, *, tenant_id: str, user_id: str) -> tuple[User, Membership]:
    row = session.exec(
        select(User, Membership)
        .where(col(Membership.user_id) == col(User.id))
        .where(col(Membership.tenant_id) == tenant_id)
        .where(col(User.id) == user_id)
    ).first()
    if row is None:
        raise NotFound(f"user {user_id} not found in this tenant", field="user_id")
    return row[0], row[1]


def change_role(session: Session, *, tenant_id: str, user_id: str, role: Role, actor: str) -> tuple[User, Membership]:
    user, membership = get_member(session, tenant_id=tenant_id, user_id=user_id)
    if membership.role == role.value:
        return user, membership
    previous = membership.role
    demotes_admin = previous == Role.admin.value
    what = f"change the role of {user.email}"
    if demotes_admin:
        _ensure_another_admin(session, tenant_id=tenant_id, membership=membership, what=what)
    membership.role = role.value
    session.add(membership)
    session.flush()
    if demotes_admin:
        _ensure_another_admin(session, tenant_id=tenant_id, membership=membership, what=what)
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="user.change_role",
        target_type="user",
        target_id=user.id,
        details={"from": previous, "to": role.value},
    )
    return user, membership


def remove_member(session: Session, *, tenant_id: str, user_id: str, actor: str) -> None:
    """Remove the user from the tenant and revoke their keys there; the user row stays (other tenants)."""
    user, membership = get_member(session, tenant_id=tenant_id, user_id=user_id)
    removes_admin = membership.role == Role.admin.value
    what = f"remove {user.email}"
    if removes_admin:
        _ensure_another_admin(session, tenant_id=tenant_id, membership=membership, what=what)
    revoked = api_keys.revoke_user_keys(session, tenant_id=tenant_id, user_id=user_id, actor=actor)
    session.delete(membership)
    session.flush()
    if removes_admin:
        _ensure_another_admin(session, tenant_id=tenant_id, membership=membership, what=what)
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="user.remove",
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "keys_revoked": revoked},
    )


def _ensure_another_admin(session: Session, *, tenant_id: str, membership: Membership, what: str) -> None:
    """Refuse a change that would leave the tenant without an admin.

    Called before the change with the admin rows locked in id order (PostgreSQL: a concurrent
    demotion waits, then sees the first one's result, and no deadlock), and again after the
    flush, which covers SQLite, where FOR UPDATE is ignored but writers are serialised.
    """
    admins = session.exec(
        select(Membership.id)
        .where(col(Membership.tenant_id) == tenant_id)
        .where(col(Membership.role) == Role.admin.value)
        .order_by(col(Membership.id))
        .with_for_update()
    ).all()
    if not any(admin_id != membership.id for admin_id in admins):
        raise Conflict(
            f"cannot {what}: a tenant must keep at least one admin; make another user admin first", field="role"
        )
