from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from shared.errors import PermissionDenied, Unauthenticated
from shared.identity import AgentIdentity
from shared.jwt_tokens import sign, verify


def test_spiffe_round_trip() -> None:
    identity = AgentIdentity("ten_abc", "agt_123")
    assert identity.spiffe_id == "spiffe://mallard/tenant/ten_abc/agent/agt_123"
    assert AgentIdentity.parse(identity.spiffe_id) == identity


@pytest.mark.parametrize(
    "uri",
    [
        "spiffe://other/tenant/a/agent/b",
        "spiffe://mallard/tenant/a",
        "https://x/y",
        "spiffe://mallard/tenant/a/agent/b/extra",
    ],
)
def test_foreign_identities_are_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="not a Mallard agent identity"):
        AgentIdentity.parse(uri)


def _keys() -> tuple[bytes, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    return (
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


def test_jwt_verifies_offline_for_its_tenant() -> None:
    private, public = _keys()
    token = sign(private, subject="usr_1", tenant_id="ten_a", role="member", ttl_seconds=60)
    claims = verify(token, public, tenant_id="ten_a")
    assert (claims.subject, claims.tenant_id, claims.role) == ("usr_1", "ten_a", "member")


def test_jwt_of_another_tenant_is_refused() -> None:
    private, public = _keys()
    token = sign(private, subject="usr_1", tenant_id="ten_b", role="admin", ttl_seconds=60)
    with pytest.raises(PermissionDenied, match="another tenant"):
        verify(token, public, tenant_id="ten_a")


def test_expired_jwt_is_refused() -> None:
    private, public = _keys()
    token = sign(private, subject="usr_1", tenant_id="ten_a", role="admin", ttl_seconds=-120)
    with pytest.raises(Unauthenticated, match="expired"):
        verify(token, public, tenant_id="ten_a", leeway=0)


def test_jwt_signed_by_another_key_is_refused() -> None:
    private, _ = _keys()
    _, other_public = _keys()
    token = sign(private, subject="usr_1", tenant_id="ten_a", role="admin", ttl_seconds=60)
    with pytest.raises(Unauthenticated, match="invalid data-plane token"):
        verify(token, other_public, tenant_id="ten_a")
