"""Data-plane JWTs: signed with the CA's JWT key, verifiable offline, bound to the caller's tenant."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from control_plane.pki import CertificateAuthority
from control_plane.settings import Settings
from shared import jwt_tokens
from shared.errors import PermissionDenied
from tests.control_plane.api.conftest import World, auth, ok


def test_token_verifies_with_the_public_key_and_names_the_tenant(
    client: TestClient, world: World, settings: Settings
) -> None:
    issued = ok(client.post("/api/v1/data-plane/token", headers=auth(world.a.member_key)))
    assert issued["tenant_id"] == world.a.tenant_id
    _private, public = CertificateAuthority.load_or_create(settings.pki_dir).ensure_jwt_keys()
    claims = jwt_tokens.verify(issued["token"], public, tenant_id=world.a.tenant_id)
    assert (claims.subject, claims.tenant_id, claims.role) == (world.a.member_user_id, world.a.tenant_id, "member")
    assert datetime.fromisoformat(issued["expires_at"]).timestamp() == claims.expires_at
    remaining = claims.expires_at - datetime.now().timestamp()
    assert 0 < remaining <= settings.data_plane_token_ttl_seconds
    with pytest.raises(PermissionDenied):
        jwt_tokens.verify(issued["token"], public, tenant_id=world.b.tenant_id)


def test_each_tenant_gets_tokens_for_itself(client: TestClient, world: World, settings: Settings) -> None:
    _private, public = CertificateAuthority.load_or_create(settings.pki_dir).ensure_jwt_keys()
    token = ok(client.post("/api/v1/data-plane/token", headers=auth(world.b.admin_key)))["token"]
    claims = jwt_tokens.verify(token, public, tenant_id=world.b.tenant_id)
    assert (claims.subject, claims.role) == (world.b.admin_user_id, "admin")
