"""The gateway process: two TLS ports (enroll, link), plus the loops that feed live streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import grpc

from control_plane.db import migrate
from control_plane.gateway.codec import tolerant
from control_plane.gateway.dbpool import Database
from control_plane.gateway.enrollment import EnrollmentService
from control_plane.gateway.link import AgentLinkService, command_message
from control_plane.gateway.registry import StreamRegistry
from control_plane.pki import CertificateAuthority
from control_plane.services.agents import record_heartbeats, revoked_among
from control_plane.services.commands import mark_delivered, pending_commands
from control_plane.settings import Settings
from shared.protos.mallard.v1 import agent_link_pb2, enrollment_pb2

log = logging.getLogger("mallard.gateway")


def server_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        # Agents ping every 30 s by default; allow down to 10 s before calling it abuse.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 3),
        # Connections re-handshake periodically, so revoked or renewed certificates take effect.
        ("grpc.max_connection_age_ms", settings.max_connection_age_seconds * 1000),
        ("grpc.max_connection_age_grace_ms", settings.max_connection_age_grace_seconds * 1000),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


class GatewayServer:
    """`await run()` serves until `shutdown()` (safe to call twice) is called."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ca = CertificateAuthority.load_or_create(settings.pki_dir)
        self.key_path, self.cert_path = self.ca.ensure_server_certificate(settings.gateway_tls_names)
        _, self.jwt_public_pem = self.ca.ensure_jwt_keys()
        self.db = Database(settings.effective_database_url)
        self.registry = StreamRegistry()
        self.link = AgentLinkService(settings, self.db, self.ca, self.registry, self.jwt_public_pem)
        self.enrollment = EnrollmentService(settings, self.db, self.ca, self.jwt_public_pem)
        # Two servers, not one server with two ports: the enrollment port must not serve the
        # agent link at all, whatever the TLS layer puts in the auth context there.
        self._servers: list[grpc.aio.Server] = []
        self._loops: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self.link_port = 0
        self.enroll_port = 0

    def _link_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "mallard.v1.AgentLink",
            {
                "Connect": grpc.stream_stream_rpc_method_handler(
                    self.link.Connect,
                    request_deserializer=tolerant(agent_link_pb2.AgentMessage),
                    response_serializer=agent_link_pb2.ControlMessage.SerializeToString,
                )
            },
        )

    def _enroll_handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "mallard.v1.Enrollment",
            {
                "Enroll": grpc.unary_unary_rpc_method_handler(
                    self.enrollment.Enroll,
                    request_deserializer=tolerant(enrollment_pb2.EnrollRequest),
                    response_serializer=enrollment_pb2.EnrollResponse.SerializeToString,
                )
            },
        )

    async def start(self) -> None:
        s = self.settings
        pair = [(self.key_path.read_bytes(), self.cert_path.read_bytes())]
        mtls = grpc.ssl_server_credentials(pair, root_certificates=self.ca.cert_pem, require_client_auth=True)
        tls = grpc.ssl_server_credentials(pair)
        link = grpc.aio.server(options=server_options(s), maximum_concurrent_rpcs=None)
        link.add_generic_rpc_handlers([self._link_handler()])
        enroll = grpc.aio.server(options=server_options(s), maximum_concurrent_rpcs=256)
        enroll.add_generic_rpc_handlers([self._enroll_handler()])
        self.link_port = link.add_secure_port(f"{s.gateway_host}:{s.gateway_port}", mtls)
        self.enroll_port = enroll.add_secure_port(f"{s.gateway_host}:{s.gateway_enroll_port}", tls)
        if not self.link_port or not self.enroll_port:
            raise RuntimeError(f"could not bind the gateway ports {s.gateway_port} / {s.gateway_enroll_port}")
        await link.start()
        await enroll.start()
        self._servers = [link, enroll]
        self._loops = [
            asyncio.create_task(self._every(s.command_poll_interval_ms / 1000, self._deliver_pending), name="commands"),
            asyncio.create_task(
                self._every(s.revocation_check_interval_ms / 1000, self._cut_revoked), name="revocation"
            ),
            asyncio.create_task(self._every(1.0, self._flush_heartbeats), name="heartbeats"),
        ]
        log.info(
            "gateway listening: link (mTLS) %s:%d, enroll (TLS) %s:%d",
            s.gateway_host,
            self.link_port,
            s.gateway_host,
            self.enroll_port,
        )

    async def run(self) -> None:
        await self.start()
        await self._stopped.wait()
        await self._stop()

    def shutdown(self) -> None:
        self._stopped.set()

    async def _stop(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._servers:
            for stream in self.registry.streams():
                stream.close(grpc.StatusCode.UNAVAILABLE, "gateway shutting down")
            await asyncio.gather(*(server.stop(grace=5) for server in self._servers))
            self._servers = []
        await self._flush_heartbeats()
        self.db.close()

    async def _every(self, seconds: float, fn: object) -> None:
        assert callable(fn)
        while True:
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gateway loop %s failed; retrying", getattr(fn, "__name__", fn))
            await asyncio.sleep(seconds)

    async def _deliver_pending(self) -> None:
        if not len(self.registry):
            return
        commands = await self.db.run(lambda s: pending_commands(s), retries=2)
        deliverable = []
        for command in commands:
            stream = self.registry.get(command.agent_id)
            if stream is not None and not stream.closed and command.id not in stream.sent_commands:
                deliverable.append((stream, command))
        if not deliverable:
            return
        # Recorded as delivered before it is sent, so an ack can never be committed before its
        # delivery; a crash in between only means a redelivery after the reconnect.
        ids = [command.id for _, command in deliverable]
        await self.db.run(lambda s: mark_delivered(s, ids))
        for stream, command in deliverable:
            stream.sent_commands.add(command.id)
            stream.send(command_message(command))

    async def _cut_revoked(self) -> None:
        streams = self.registry.streams()
        if not streams:
            return
        now = datetime.now(UTC)
        for stream in streams:
            if stream.not_after <= now:
                stream.close(grpc.StatusCode.UNAUTHENTICATED, "client certificate expired during the stream")
        serials = {s.agent_id: s.serial for s in streams if not s.closed}
        cut = await self.db.run(lambda s: revoked_among(s, serials), retries=2)
        for agent_id in cut:
            live = self.registry.get(agent_id)
            if live is not None:
                log.info("cutting the stream of revoked agent %s", agent_id)
                live.close(grpc.StatusCode.PERMISSION_DENIED, f"agent {agent_id} or its certificate has been revoked")

    async def _flush_heartbeats(self) -> None:
        seen = self.registry.take_dirty()
        if seen:
            try:
                await self.db.run(lambda s: record_heartbeats(s, seen), retries=2)
            except Exception:
                # Put them back so the next flush writes them; newer touches win.
                for agent_id, at in seen.items():
                    self.registry.dirty.setdefault(agent_id, at)
                raise


def prepare(settings: Settings) -> None:
    """Create the schema and the PKI material the gateway needs (idempotent)."""
    migrate(settings.effective_database_url)
    CertificateAuthority.load_or_create(settings.pki_dir).ensure_server_certificate(settings.gateway_tls_names)
