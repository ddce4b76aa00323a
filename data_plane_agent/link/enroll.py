"""One-time enrollment: generate a key locally, send only a CSR and the join token."""

from __future__ import annotations

import logging
import socket

import grpc

from data_plane_agent.link.identity import AgentHome
from data_plane_agent.settings import AgentSettings
from shared import __version__
from shared.identity import AgentIdentity
from shared.keys import build_csr, generate_private_key, private_key_pem
from shared.protos.mallard.v1 import enrollment_pb2 as pb
from shared.protos.mallard.v1 import enrollment_pb2_grpc as pb_grpc

log = logging.getLogger("mallard.agent.enroll")


class EnrollmentError(Exception):
    """Enrollment was refused or could not reach the control plane."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def channel_options(settings: AgentSettings) -> list[tuple[str, int | str]]:
    options: list[tuple[str, int | str]] = [
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_receive_message_length", 4 << 20),
        # Reconnection is ours (jittered backoff), not the channel's.
        ("grpc.enable_retries", 0),
    ]
    if settings.tls_server_name:
        options.append(("grpc.ssl_target_name_override", settings.tls_server_name))
    return options


def read_ca(settings: AgentSettings) -> bytes | None:
    return settings.ca_file.read_bytes() if settings.ca_file else None


async def enroll(settings: AgentSettings, home: AgentHome, *, timeout: float = 15.0) -> AgentIdentity:
    if not settings.join_token:
        raise EnrollmentError(
            f"agent in {home.root} is not enrolled and no join token was given; "
            "create one with `mallard agents token create --name NAME` and pass --join-token",
            retryable=False,
        )
    key = generate_private_key()
    credentials = grpc.ssl_channel_credentials(root_certificates=read_ca(settings))
    target = settings.effective_enroll_address
    async with grpc.aio.secure_channel(target, credentials, options=channel_options(settings)) as channel:
        stub = pb_grpc.EnrollmentStub(channel)
        try:
            response: pb.EnrollResponse = await stub.Enroll(
                pb.EnrollRequest(
                    join_token=settings.join_token,
                    csr_pem=build_csr(key),
                    agent_version=__version__,
                    hostname=socket.gethostname(),
                    expected_tenant_id=settings.tenant_id,
                ),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            retryable = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            raise EnrollmentError(
                f"enrollment at {target} failed: {exc.code().name}: {exc.details()}", retryable=retryable
            ) from exc
    identity = AgentIdentity(tenant_id=response.tenant_id, agent_id=response.agent_id)
    home.save_enrollment(
        identity=identity,
        key_pem=private_key_pem(key),
        cert_pem=bytes(response.certificate_pem),
        ca_pem=bytes(response.ca_chain_pem),
        jwt_public_pem=bytes(response.jwt_public_key_pem),
    )
    log.info("enrolled as %s", identity.spiffe_id)
    return identity
