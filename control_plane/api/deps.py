"""Request dependencies: settings, a database session, and who is calling (the principal).

Tenant scoping starts here: the principal's tenant comes from the API key's row, never from
anything the caller sends, and every route passes `principal.tenant_id` to the services.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from control_plane.db import get_engine
from control_plane.models import Role, User
from control_plane.pki import CertificateAuthority
from control_plane.services import api_keys
from control_plane.settings import Settings
from shared.errors import PermissionDenied, Unauthenticated

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="An API key, `mk.<key id>.<secret>`.")
_ca_lock = threading.Lock()


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    # Routes commit explicitly; anything not committed is rolled back when the session closes,
    # so a request that fails stores nothing.
    with Session(get_engine(settings.effective_database_url), expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Principal:
    """The caller: a user acting in one tenant, through one API key, with one role."""

    user: User
    tenant_id: str
    role: Role
    api_key_id: str

    @property
    def user_id(self) -> str:
        return self.user.id

    @property
    def actor(self) -> str:
        """How the audit log and `created_by` columns name this caller."""
        return f"user:{self.user.id}"


def action_name(request: Request) -> str:
    """The route's name in words ("create project"), for permission messages."""
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    return name.replace("_", " ") if name else f"{request.method} {request.url.path}"


def get_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        detail = "is not a Bearer token" if request.headers.get("authorization") else "is missing"
        raise Unauthenticated(
            f"the Authorization header {detail}; send 'Authorization: Bearer <api key>' "
            "(set MALLARD_API_KEY for the CLI)"
        )
    key, user, membership = api_keys.authenticate(session, credentials.credentials)
    role = Role(membership.role)
    # Enforced here rather than per route, so a new write route cannot forget it.
    if role is Role.viewer and request.method not in READ_ONLY_METHODS:
        raise PermissionDenied(f"role viewer cannot {action_name(request)}; viewers have read-only access")
    if api_keys.touch(session, key):
        session.commit()
    return Principal(user=user, tenant_id=key.tenant_id, role=role, api_key_id=key.id)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require_admin(request: Request, principal: CurrentPrincipal) -> Principal:
    if principal.role is not Role.admin:
        raise PermissionDenied(f"role {principal.role.value} cannot {action_name(request)}; only tenant admins can")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]


def require_platform_admin(request: Request, principal: CurrentPrincipal) -> Principal:
    if not principal.user.is_platform_admin:
        raise PermissionDenied(f"only platform admins can {action_name(request)}")
    return principal


PlatformAdminPrincipal = Annotated[Principal, Depends(require_platform_admin)]


def get_certificate_authority(request: Request, settings: SettingsDep) -> CertificateAuthority:
    # Loaded on first use, once per app: creating the CA writes key files, which a process that
    # never signs anything should not do at import or startup.
    with _ca_lock:
        ca: CertificateAuthority | None = getattr(request.app.state, "certificate_authority", None)
        if ca is None:
            ca = CertificateAuthority.load_or_create(settings.pki_dir)
            request.app.state.certificate_authority = ca
    return ca


CertificateAuthorityDep = Annotated[CertificateAuthority, Depends(get_certificate_authority)]
