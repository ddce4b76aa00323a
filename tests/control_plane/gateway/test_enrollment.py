"""Join tokens at the gateway: once only, atomically, within their TTL and tenant."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlmodel import select

from control_plane.db import session_scope
from control_plane.models import Agent, JoinToken
from shared.identity import AgentIdentity
from tests.helpers.factories import expire_join_token, make_join_token, make_tenant
from tests.helpers.grpc_client import enroll
from tests.helpers.stack import ControlPlane


def test_enroll_issues_short_lived_client_certificate_from_the_token_row(gateway: ControlPlane) -> None:
    tenant = make_tenant(gateway.database_url, "acme")
    token = make_join_token(gateway.database_url, tenant, name="edge-1")
    response, _key = enroll(gateway.enroll_address, gateway.ca_file, token)
    cert = x509.load_pem_x509_certificate(response.certificate_pem)
    identity = AgentIdentity.from_certificate(cert)
    assert identity == AgentIdentity(tenant_id=tenant, agent_id=response.agent_id)
    assert response.spiffe_id == identity.spiffe_id
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    # default 24 h, backdated 5 minutes for clock skew
    assert lifetime.total_seconds() == pytest.approx(24 * 3600 + 300, abs=5)
    assert response.jwt_public_key_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    with session_scope(gateway.database_url) as session:
        agent = session.get(Agent, response.agent_id)
        assert agent is not None and agent.name == "edge-1" and agent.tenant_id == tenant
        assert agent.cert_serial == format(cert.serial_number, "x")


def test_replayed_token_is_refused(gateway: ControlPlane) -> None:
    tenant = make_tenant(gateway.database_url, "acme")
    token = make_join_token(gateway.database_url, tenant)
    enroll(gateway.enroll_address, gateway.ca_file, token)
    with pytest.raises(grpc.RpcError) as err:
        enroll(gateway.enroll_address, gateway.ca_file, token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "already been used" in err.value.details()


def test_concurrent_redemptions_exactly_one_succeeds(gateway: ControlPlane) -> None:
    tenant = make_tenant(gateway.database_url, "acme")
    for _round in range(3):
        token = make_join_token(gateway.database_url, tenant)
        results: list[str] = []
        barrier = threading.Barrier(4)

        def redeem(token: str = token, barrier: threading.Barrier = barrier, results: list[str] = results) -> None:
            barrier.wait()
            try:
                enroll(gateway.enroll_address, gateway.ca_file, token)
                results.append("ok")
            except grpc.RpcError as exc:
                results.append(exc.code().name)

        threads = [threading.Thread(target=redeem) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == ["PERMISSION_DENIED"] * 3 + ["ok"], results
    with session_scope(gateway.database_url) as session:
        assert len(session.exec(select(Agent)).all()) == 3


def test_expired_token_is_refused(gateway: ControlPlane) -> None:
    tenant = make_tenant(gateway.database_url, "acme")
    token = make_join_token(gateway.database_url, tenant)
    expire_join_token(gateway.database_url, token)
    with pytest.raises(grpc.RpcError) as err:
        enroll(gateway.enroll_address, gateway.ca_file, token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "expired" in err.value.details()


def test_another_tenants_token_is_refused(gateway: ControlPlane) -> None:
    tenant_a = make_tenant(gateway.database_url, "tenant-a")
    tenant_b = make_tenant(gateway.database_url, "tenant-b")
    token_b = make_join_token(gateway.database_url, tenant_b)
    with pytest.raises(grpc.RpcError) as err:
        enroll(gateway.enroll_address, gateway.ca_file, token_b, tenant=tenant_a)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "another tenant" in err.value.details()
    # The refusal did not burn the token for its own tenant.
    response, _ = enroll(gateway.enroll_address, gateway.ca_file, token_b, tenant=tenant_b)
    assert response.tenant_id == tenant_b


@pytest.mark.parametrize(
    ("token", "message"),
    [("", "join_token is required"), ("garbage", "malformed"), ("mjt.jt_nothere.secret", "not recognised")],
)
def test_unknown_or_malformed_tokens_are_unauthenticated(gateway: ControlPlane, token: str, message: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        enroll(gateway.enroll_address, gateway.ca_file, token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert message in err.value.details()


def test_wrong_secret_for_a_real_token_id_is_refused(gateway: ControlPlane) -> None:
    tenant = make_tenant(gateway.database_url, "acme")
    token = make_join_token(gateway.database_url, tenant)
    forged = token.rsplit(".", 1)[0] + ".not-the-secret"
    with pytest.raises(grpc.RpcError) as err:
        enroll(gateway.enroll_address, gateway.ca_file, forged)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("csr", "message"),
    [
        (b"not a csr", "not a valid PEM CSR"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "not a valid PEM CSR"),
        (b"x" * 20000, "larger than"),
    ],
)
def test_malformed_csr_is_refused_and_does_not_burn_the_token(gateway: ControlPlane, csr: bytes, message: str) -> None:
    tenant = make_tenant(gateway.database_url, "acme")
    token = make_join_token(gateway.database_url, tenant)
    with pytest.raises(grpc.RpcError) as err:
        enroll(gateway.enroll_address, gateway.ca_file, token, csr=csr)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()
    with session_scope(gateway.database_url) as session:
        assert session.get(JoinToken, token.split(".")[1]).redeemed_at is None  # type: ignore[union-attr]
        assert session.exec(select(Agent)).all() == []
    enroll(gateway.enroll_address, gateway.ca_file, token)  # still usable


def test_enroll_port_does_not_serve_the_link(gateway: ControlPlane, tmp_path: Path) -> None:
    from shared.protos.mallard.v1 import agent_link_pb2 as pb
    from shared.protos.mallard.v1 import agent_link_pb2_grpc as pb_grpc

    creds = grpc.ssl_channel_credentials(root_certificates=gateway.ca_file.read_bytes())
    with grpc.secure_channel(gateway.enroll_address, creds) as channel:
        call = pb_grpc.AgentLinkStub(channel).Connect(iter([pb.AgentMessage(hello=pb.Hello(version="x"))]), timeout=5)
        with pytest.raises(grpc.RpcError) as err:
            list(call)
    # A separate server: the link does not exist on the enrollment port at all.
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
