"""One-time agent join tokens (admins only). Secrets are shown once, at creation."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from control_plane.api.deps import AdminPrincipal, SessionDep, SettingsDep
from control_plane.api.schemas import JoinTokenCreated, JoinTokenPublic, RequestBody
from control_plane.services import join_tokens
from shared.errors import InvalidInput

router = APIRouter(prefix="/join-tokens", tags=["join-tokens"])


class JoinTokenCreate(RequestBody):
    name: str = Field(description="Name of the agent it enrolls (lowercase DNS label).")
    ttl_seconds: int | None = Field(
        default=None, description="Defaults to the server's join_token_default_ttl_seconds."
    )


@router.get("", response_model=list[JoinTokenPublic])
def list_join_tokens(principal: AdminPrincipal, session: SessionDep) -> list[JoinTokenPublic]:
    return [JoinTokenPublic.from_row(t) for t in join_tokens.list_join_tokens(session, tenant_id=principal.tenant_id)]


@router.post("", status_code=201, response_model=JoinTokenCreated)
def create_join_token(
    body: JoinTokenCreate, principal: AdminPrincipal, session: SessionDep, settings: SettingsDep
) -> JoinTokenCreated:
    ttl = settings.join_token_default_ttl_seconds if body.ttl_seconds is None else body.ttl_seconds
    # Checked here too so the error names the request's field (the service calls it "ttl").
    if not 60 <= ttl <= settings.join_token_max_ttl_seconds:
        raise InvalidInput(
            f"ttl_seconds must be between 60 and {settings.join_token_max_ttl_seconds}, got {ttl}", field="ttl_seconds"
        )
    token, plaintext = join_tokens.create_join_token(
        session,
        tenant_id=principal.tenant_id,
        name=body.name,
        ttl_seconds=ttl,
        max_ttl_seconds=settings.join_token_max_ttl_seconds,
        actor=principal.actor,
    )
    session.commit()
    return JoinTokenCreated(**JoinTokenCreated.fields_of(token), token=plaintext)


@router.delete("/{token_id}", response_model=JoinTokenPublic)
def revoke_join_token(token_id: str, principal: AdminPrincipal, session: SessionDep) -> JoinTokenPublic:
    token = join_tokens.revoke_join_token(
        session, tenant_id=principal.tenant_id, token_id=token_id, actor=principal.actor
    )
    session.commit()
    return JoinTokenPublic.from_row(token)
