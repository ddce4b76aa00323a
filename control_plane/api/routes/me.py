"""Who the presented API key belongs to."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.api.deps import CurrentPrincipal, SessionDep
from control_plane.api.schemas import MePublic, TenantPublic, UserPublic
from control_plane.services import tenants, users

router = APIRouter(tags=["me"])


@router.get("/me", response_model=MePublic)
def me(principal: CurrentPrincipal, session: SessionDep) -> MePublic:
    user, membership = users.get_member(session, tenant_id=principal.tenant_id, user_id=principal.user_id)
    tenant = tenants.get_tenant(session, principal.tenant_id)
    return MePublic(
        user=UserPublic.from_row(user, membership), tenant=TenantPublic.from_row(tenant), role=membership.role
    )
