"""Direct gRPC calls to the gateway from tests: enrollment and raw link streams."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import grpc

from control_plane.db import session_scope
from control_plane.models import AgentCertificate
from control_plane.pki import CertificateAuthority
from shared.identity import AgentIdentity
from shared.keys import build_csr, generate_private_key, private_key_pem
from shared.protos.mallard.v1 import enrollment_pb2 as epb
from shared.protos.mallard.v1 import enrollment_pb2_grpc as epb_grpc


def enroll(
    address: str, ca_file: Path, token: str, *, csr: bytes | None = None, tenant: str = "", timeout: float = 10
) -> tuple[epb.EnrollResponse, bytes]:
    """Returns (response, private key PEM). Raises grpc.RpcError on refusal."""
    key = generate_private_key()
    creds = grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes())
    with grpc.secure_channel(address, creds) as channel:
        response = epb_grpc.EnrollmentStub(channel).Enroll(
            epb.EnrollRequest(
                join_token=token,
                csr_pem=build_csr(key) if csr is None else csr,
                agent_version="test",
                hostname="test-host",
                expected_tenant_id=tenant,
            ),
            timeout=timeout,
        )
    return response, private_key_pem(key)


def mint_certificate(
    ca_dir: Path, identity: AgentIdentity, *, lifetime: timedelta, backdate: timedelta, record_in: str | None = None
) -> tuple[bytes, bytes, str]:
    """Sign a client cert directly with a CA (the real one or a foreign one): (key, cert, serial)."""
    ca = CertificateAuthority.load_or_create(ca_dir)
    key = generate_private_key()
    signed = ca.sign_agent_csr(build_csr(key), identity, lifetime=lifetime, backdate=backdate)
    if record_in:
        with session_scope(record_in) as session:
            session.add(
                AgentCertificate(
                    serial=signed.serial,
                    agent_id=identity.agent_id,
                    tenant_id=identity.tenant_id,
                    not_before=signed.not_before,
                    not_after=signed.not_after,
                )
            )
            session.commit()
    return private_key_pem(key), signed.pem, signed.serial


def link_channel(
    address: str,
    ca_file: Path,
    key_pem: bytes | None,
    cert_pem: bytes | None,
    options: list[tuple[str, int]] | None = None,
) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes(), private_key=key_pem, certificate_chain=cert_pem
    )
    return grpc.secure_channel(address, creds, options=options or [])
