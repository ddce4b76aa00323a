"""Enroll: join token + CSR -> short-lived client certificate (server-authenticated TLS)."""

from __future__ import annotations

import logging

import grpc
from sqlmodel import Session

from control_plane.gateway.codec import Undecodable
from control_plane.gateway.dbpool import Database
from control_plane.gateway.wiretap import WireTap
from control_plane.pki import CertificateAuthority
from control_plane.pki.ca import parse_csr_public_key
from control_plane.services.agents import issue_certificate
from control_plane.services.join_tokens import redeem_join_token
from control_plane.settings import Settings
from shared.errors import MallardError
from shared.protos.mallard.v1 import enrollment_pb2 as pb

log = logging.getLogger("mallard.gateway.enroll")


class EnrollmentService:
    def __init__(self, settings: Settings, db: Database, ca: CertificateAuthority, jwt_public_pem: bytes) -> None:
        self.settings = settings
        self.db = db
        self.ca = ca
        self.jwt_public_pem = jwt_public_pem
        self.tap = WireTap(settings.wire_log)

    async def Enroll(
        self, request: pb.EnrollRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> pb.EnrollResponse:
        if isinstance(request, Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
            raise AssertionError("unreachable")
        if not request.join_token:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "join_token is required")
        if not request.csr_pem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "csr_pem is required")

        def enroll(session: Session) -> pb.EnrollResponse:
            agent = redeem_join_token(
                session,
                token=request.join_token,
                expected_tenant_id=request.expected_tenant_id,
                hostname=request.hostname,
                version=request.agent_version,
            )
            session.flush()
            signed = issue_certificate(
                session,
                self.ca,
                agent,
                bytes(request.csr_pem),
                lifetime_seconds=self.settings.cert_lifetime_seconds,
                backdate_seconds=self.settings.cert_backdate_seconds,
            )
            return pb.EnrollResponse(
                agent_id=agent.id,
                tenant_id=agent.tenant_id,
                spiffe_id=f"spiffe://mallard/tenant/{agent.tenant_id}/agent/{agent.id}",
                certificate_pem=signed.pem,
                ca_chain_pem=self.ca.cert_pem,
                not_after_unix=int(signed.not_after.timestamp()),
                jwt_public_key_pem=self.jwt_public_pem,
            )

        try:
            # The CSR is validated before the token is touched, so a bad CSR never burns a token.
            parse_csr_public_key(bytes(request.csr_pem))
            response = await self.db.run(enroll)
        except MallardError as exc:
            log.info("enrollment refused: %s", exc.message)
            await context.abort(exc.grpc_code, exc.message)
            raise AssertionError("unreachable") from exc
        self.tap.record("up", "Enroll", response.agent_id, request)
        self.tap.record("down", "Enroll", response.agent_id, response)
        log.info("enrolled agent %s for tenant %s", response.agent_id, response.tenant_id)
        return response
