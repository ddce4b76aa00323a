"""Tenants: the first one (bootstrap) and the ones a platform admin creates, each with an admin and key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from control_plane.models import ApiKey, Membership, Role, Tenant, User
from control_plane.services import api_keys, audit, users
from control_plane.services.join_tokens import validate_name
from shared.errors import Conflict, NotFound

BOOTSTRAP_ACTOR = "bootstrap"
# Any constant works; it only has to be the same in every control-plane process.
_BOOTSTRAP_LOCK_KEY = 0x6D616C6C  # "mall"


@dataclass(frozen=True)
class NewTenant:
    """A tenant just created, with its first admin and that admin's key (plaintext shown once)."""

    tenant: Tenant
    admin: User
    membership: Membership
    api_key: ApiKey
    api_key_plaintext: str


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"tenant {tenant_id} not found", field="tenant_id")
    return tenant


def count_tenants(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Tenant)).one())


def bootstrap(session: Session, *, tenant_name: str, email: str, name: str) -> NewTenant:
    """Create the first tenant and a platform-admin user. Refused once any tenant exists."""
    validate_name(tenant_name, "tenant")
    users.normalise_email(email, "email")  # input errors first, before any state is looked at
    if session.get_bind().dialect.name == "postgresql":
        # Serialise concurrent bootstraps; the count below then sees the winner's tenant.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _BOOTSTRAP_LOCK_KEY})
    if count_tenants(session) > 0:
        raise Conflict("already bootstrapped: a tenant exists; use an admin API key instead", field="tenant")
    created = _create_tenant_with_admin(
        session,
        name=tenant_name,
        admin_email=email,
        admin_name=name,
        actor=BOOTSTRAP_ACTOR,
        name_field="tenant",
        email_field="email",
        platform_admin=True,
    )
    # SQLite ignores the advisory lock, but writers are serialised: a concurrent bootstrap that
    # passed the first check finds two tenants here once it holds the write lock.
    if count_tenants(session) > 1:
        raise Conflict("already bootstrapped: a tenant exists; use an admin API key instead", field="tenant")
    return created


def create_tenant(session: Session, *, name: str, admin_email: str, actor: str) -> NewTenant:
    validate_name(name, "name")
    users.normalise_email(admin_email, "admin_email")
    return _create_tenant_with_admin(
        session,
        name=name,
        admin_email=admin_email,
        admin_name="",
        actor=actor,
        name_field="name",
        email_field="admin_email",
        platform_admin=False,
    )


def _create_tenant_with_admin(
    session: Session,
    *,
    name: str,
    admin_email: str,
    admin_name: str,
    actor: str,
    name_field: str,
    email_field: str,
    platform_admin: bool,
) -> NewTenant:
    tenant = Tenant(name=name)
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a tenant named {name!r} already exists", field=name_field) from exc
    audit.record(
        session,
        tenant_id=tenant.id,
        actor=actor,
        action="tenant.create",
        target_type="tenant",
        target_id=tenant.id,
        details={"name": name},
    )
    user, membership = users.add_member(
        session,
        tenant_id=tenant.id,
        email=admin_email,
        name=admin_name,
        role=Role.admin,
        actor=actor,
        email_field=email_field,
    )
    if platform_admin and not user.is_platform_admin:
        user.is_platform_admin = True
        session.add(user)
    key, plaintext = api_keys.create_api_key(
        session, tenant_id=tenant.id, user_id=user.id, name=f"{name}-admin", expires_in_days=None, actor=actor
    )
    return NewTenant(tenant=tenant, admin=user, membership=membership, api_key=key, api_key_plaintext=plaintext)
