"""Short-lived JWTs for calling an agent's data-plane API, verified there offline."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
from fastapi import APIRouter

from control_plane.api.deps import CertificateAuthorityDep, CurrentPrincipal, SettingsDep
from control_plane.api.schemas import DataPlaneTokenPublic
from control_plane.models.common import iso
from shared import jwt_tokens

router = APIRouter(prefix="/data-plane", tags=["data-plane"])


@router.post("/token", response_model=DataPlaneTokenPublic)
def create_data_plane_token(
    principal: CurrentPrincipal, settings: SettingsDep, ca: CertificateAuthorityDep
) -> DataPlaneTokenPublic:
    private_pem, _public_pem = ca.ensure_jwt_keys()
    token = jwt_tokens.sign(
        private_pem,
        subject=principal.user_id,
        tenant_id=principal.tenant_id,
        role=principal.role.value,
        ttl_seconds=settings.data_plane_token_ttl_seconds,
    )
    # Report the expiry sign() actually wrote, not a second reading of the clock.
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    return DataPlaneTokenPublic(
        token=token, expires_at=iso(datetime.fromtimestamp(exp, UTC)), tenant_id=principal.tenant_id
    )
