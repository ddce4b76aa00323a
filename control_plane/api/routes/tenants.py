"""Tenants: platform admins create them; everyone can read their own."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.api.deps import CurrentPrincipal, PlatformAdminPrincipal, SessionDep
from control_plane.api.schemas import ApiKeyCreated, NewTenantPublic, RequestBody, TenantPublic, UserPublic
from control_plane.services import tenants

router = APIRouter(prefix="/tenants", tags=["tenants"])


class TenantCreate(RequestBody):
    name: str
    admin_email: str


@router.post("", status_code=201, response_model=NewTenantPublic)
def create_tenant(body: TenantCreate, principal: PlatformAdminPrincipal, session: SessionDep) -> NewTenantPublic:
    created = tenants.create_tenant(session, name=body.name, admin_email=body.admin_email, actor=principal.actor)
    session.commit()
    return NewTenantPublic(
        tenant=TenantPublic.from_row(created.tenant),
        user=UserPublic.from_row(created.admin, created.membership),
        api_key=ApiKeyCreated(**ApiKeyCreated.fields_of(created.api_key), key=created.api_key_plaintext),
    )


@router.get("/current", response_model=TenantPublic)
def get_current_tenant(principal: CurrentPrincipal, session: SessionDep) -> TenantPublic:
    return TenantPublic.from_row(tenants.get_tenant(session, principal.tenant_id))
