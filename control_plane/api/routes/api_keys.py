"""API keys. Members manage their own; admins manage everyone's in the tenant."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from control_plane.api.deps import CurrentPrincipal, Principal, SessionDep
from control_plane.api.schemas import ApiKeyCreated, ApiKeyPublic, RequestBody
from control_plane.models import Role
from control_plane.services import api_keys, users
from shared.errors import NotFound, PermissionDenied

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


class ApiKeyCreate(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    user_id: str | None = Field(default=None, description="Whose key; admins only, defaults to the caller.")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="Omit for a key that never expires.")


def _is_admin(principal: Principal) -> bool:
    return principal.role is Role.admin


@router.get("", response_model=list[ApiKeyPublic])
def list_api_keys(principal: CurrentPrincipal, session: SessionDep) -> list[ApiKeyPublic]:
    owner = None if _is_admin(principal) else principal.user_id
    return [
        ApiKeyPublic.from_row(k) for k in api_keys.list_api_keys(session, tenant_id=principal.tenant_id, user_id=owner)
    ]


@router.post("", status_code=201, response_model=ApiKeyCreated)
def create_api_key(body: ApiKeyCreate, principal: CurrentPrincipal, session: SessionDep) -> ApiKeyCreated:
    owner = body.user_id or principal.user_id
    if owner != principal.user_id:
        if not _is_admin(principal):
            raise PermissionDenied(
                f"role {principal.role.value} cannot create keys for other users; omit user_id to create your own",
                field="user_id",
            )
        users.get_member(session, tenant_id=principal.tenant_id, user_id=owner)
    key, plaintext = api_keys.create_api_key(
        session,
        tenant_id=principal.tenant_id,
        user_id=owner,
        name=body.name,
        expires_in_days=body.expires_in_days,
        actor=principal.actor,
    )
    session.commit()
    return ApiKeyCreated(**ApiKeyCreated.fields_of(key), key=plaintext)


@router.delete("/{key_id}", response_model=ApiKeyPublic)
def revoke_api_key(key_id: str, principal: CurrentPrincipal, session: SessionDep) -> ApiKeyPublic:
    key = api_keys.get_api_key(session, tenant_id=principal.tenant_id, key_id=key_id)
    if key.user_id != principal.user_id and not _is_admin(principal):
        # Someone else's key is treated as absent: a member has no business knowing it exists.
        raise NotFound(f"API key {key_id} not found", field="key_id")
    api_keys.revoke_api_key(session, key, actor=principal.actor)
    session.commit()
    return ApiKeyPublic.from_row(key)
