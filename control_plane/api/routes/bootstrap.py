"""Claiming a fresh control plane: the first tenant, its platform-admin user and their key."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from pydantic import Field

from control_plane.api.deps import SessionDep, SettingsDep
from control_plane.api.schemas import ApiKeyCreated, NewTenantPublic, RequestBody, TenantPublic, UserPublic
from control_plane.services import tenants
from shared.errors import Unauthenticated

router = APIRouter(tags=["bootstrap"])


class BootstrapRequest(RequestBody):
    tenant: str = Field(description="Name of the first tenant (lowercase DNS label).")
    email: str = Field(description="Email of the platform admin created with it.")
    name: str = Field(default="", max_length=200)


@router.post("/bootstrap", status_code=201, response_model=NewTenantPublic)
def bootstrap(
    body: BootstrapRequest,
    session: SessionDep,
    settings: SettingsDep,
    x_bootstrap_token: Annotated[
        str | None, Header(description="Required when MALLARD_BOOTSTRAP_TOKEN is set.")
    ] = None,
) -> NewTenantPublic:
    expected = settings.bootstrap_token
    if expected and not hmac.compare_digest((x_bootstrap_token or "").encode(), expected.encode()):
        raise Unauthenticated("missing or wrong X-Bootstrap-Token header; use the value of MALLARD_BOOTSTRAP_TOKEN")
    created = tenants.bootstrap(session, tenant_name=body.tenant, email=body.email, name=body.name)
    session.commit()
    return NewTenantPublic(
        tenant=TenantPublic.from_row(created.tenant),
        user=UserPublic.from_row(created.admin, created.membership),
        api_key=ApiKeyCreated(**ApiKeyCreated.fields_of(created.api_key), key=created.api_key_plaintext),
    )
