"""The AgentLink servicer: identity from the peer certificate only, then a bidi stream."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
from cryptography import x509
from sqlmodel import Session

from control_plane.gateway.codec import Undecodable
from control_plane.gateway.dbpool import Database
from control_plane.gateway.registry import AgentStream, Close, StreamRegistry
from control_plane.gateway.wiretap import WireTap
from control_plane.models import Agent, AgentCommand, utcnow
from control_plane.pki import CertificateAuthority
from control_plane.services import audit
from control_plane.services.agents import (
    MAX_EVENT_PAYLOAD,
    apply_event,
    authorize_peer,
    issue_certificate,
    mark_connected,
    mark_disconnected,
    revoke_superseded,
)
from control_plane.services.commands import mark_delivered, open_commands, record_ack
from control_plane.settings import Settings
from shared.errors import MallardError
from shared.identity import AgentIdentity
from shared.protos.mallard.v1 import agent_link_pb2 as pb

log = logging.getLogger("mallard.gateway.link")
HELLO_TIMEOUT = 10.0


class StreamError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def command_message(command: AgentCommand) -> pb.ControlMessage:
    return pb.ControlMessage(
        command=pb.Command(
            id=command.id,
            type=command.type,
            spec_json=command.spec_json,
            created_at_unix_ms=int(command.created_at.timestamp() * 1000),
        )
    )


def peer_identity(context: grpc.aio.ServicerContext) -> tuple[AgentIdentity, x509.Certificate]:
    """The caller's identity, read from its verified TLS certificate and nothing else."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert") or []
    if not pems:
        raise StreamError(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required on the agent link")
    cert = x509.load_pem_x509_certificate(pems[0])
    try:
        identity = AgentIdentity.from_certificate(cert)
    except ValueError as exc:
        raise StreamError(grpc.StatusCode.PERMISSION_DENIED, f"certificate is not an agent certificate: {exc}") from exc
    if cert.not_valid_after_utc <= datetime.now(UTC):
        raise StreamError(grpc.StatusCode.UNAUTHENTICATED, "client certificate has expired; re-enroll the agent")
    return identity, cert


class AgentLinkService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        ca: CertificateAuthority,
        registry: StreamRegistry,
        jwt_public_pem: bytes,
    ) -> None:
        self.settings = settings
        self.db = db
        self.ca = ca
        self.registry = registry
        self.jwt_public_pem = jwt_public_pem
        self.tap = WireTap(settings.wire_log)

    def intervals(self) -> pb.Intervals:
        return pb.Intervals(heartbeat_ms=self.settings.heartbeat_interval_ms)

    async def Connect(
        self,
        request_iterator: AsyncIterator[pb.AgentMessage | Undecodable],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.ControlMessage]:
        stream: AgentStream | None = None
        reader: asyncio.Task[None] | None = None
        try:
            identity, cert = peer_identity(context)
            serial = format(cert.serial_number, "x")
            agent = await self.db.run(lambda s: authorize_peer(s, identity, serial))
            hello = await self._read_hello(request_iterator)
            await self.db.run(lambda s: self._connected(s, agent.id, hello, serial))
            stream = AgentStream(agent.id, agent.tenant_id, serial, cert.not_valid_after_utc)
            self.registry.add(stream)
            self.registry.touch(agent.id)
            log.info("agent %s connected (version %s)", agent.id, hello.version)
            welcome = pb.ControlMessage(
                welcome=pb.Welcome(
                    agent_id=agent.id,
                    tenant_id=agent.tenant_id,
                    intervals=self.intervals(),
                    last_event_seq=agent.last_event_seq,
                    jwt_public_key_pem=self.jwt_public_pem,
                )
            )
            self.tap.record("down", "Connect", agent.id, welcome)
            yield welcome
            await self.deliver_open_commands([stream])
            reader = asyncio.create_task(self._read_loop(stream, request_iterator))
            while True:
                item = await stream.outbox.get()
                if isinstance(item, Close):
                    if item.code == grpc.StatusCode.OK:
                        return  # the agent closed its side cleanly: end with OK, not an abort
                    raise StreamError(item.code, item.details)
                self.tap.record("down", "Connect", stream.agent_id, item)
                yield item
        except StreamError as exc:
            await context.abort(exc.code, exc.details)
        except MallardError as exc:
            await context.abort(exc.grpc_code, exc.message)
        finally:
            if reader is not None:
                reader.cancel()
            if stream is not None:
                stream.closed = True
                if self.registry.remove(stream):
                    self.registry.last_seen.pop(stream.agent_id, None)
                    agent_id = stream.agent_id
                    try:
                        await self.db.run(lambda s: mark_disconnected(s, agent_id))
                    except Exception:  # the gateway may be shutting down; liveness catches up
                        log.exception("could not mark agent %s disconnected", agent_id)
                log.info("agent %s disconnected", stream.agent_id)

    async def _read_hello(self, request_iterator: AsyncIterator[pb.AgentMessage | Undecodable]) -> pb.Hello:
        try:
            first = await asyncio.wait_for(anext(request_iterator), HELLO_TIMEOUT)
        except (TimeoutError, StopAsyncIteration) as exc:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, "the first message on the link must be hello") from exc
        if isinstance(first, Undecodable):
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, first.reason)
        if first.WhichOneof("body") != "hello":
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, "the first message on the link must be hello")
        self.tap.record("up", "Connect", "", first)
        return first.hello

    @staticmethod
    def _connected(session: Session, agent_id: str, hello: pb.Hello, serial: str) -> None:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        revoke_superseded(session, agent_id=agent_id, serial=serial)
        mark_connected(
            session,
            agent,
            version=hello.version,
            capabilities=list(hello.capabilities),
            data_plane_url=hello.data_plane_url,
            hostname=hello.hostname,
        )

    async def _read_loop(
        self, stream: AgentStream, request_iterator: AsyncIterator[pb.AgentMessage | Undecodable]
    ) -> None:
        try:
            async for message in request_iterator:
                if stream.closed:
                    return
                await self._handle(stream, message)
            stream.close(grpc.StatusCode.OK, "agent closed the stream")
        except StreamError as exc:
            stream.close(exc.code, exc.details)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError:
            stream.close(grpc.StatusCode.CANCELLED, "stream broken")
        except Exception as exc:
            log.exception("agent %s: error handling a message", stream.agent_id)
            stream.close(grpc.StatusCode.INTERNAL, f"gateway error: {type(exc).__name__}")

    async def _handle(self, stream: AgentStream, message: pb.AgentMessage | Undecodable) -> None:
        if isinstance(message, Undecodable):
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, message.reason)
        self.tap.record("up", "Connect", stream.agent_id, message)
        kind = message.WhichOneof("body")
        if kind == "heartbeat":
            self.registry.touch(stream.agent_id)
        elif kind == "event":
            await self._on_event(stream, message.event)
        elif kind == "command_ack":
            await self._on_ack(stream, message.command_ack)
        elif kind == "renew":
            await self._on_renew(stream, bytes(message.renew.csr_pem))
        elif kind == "hello":
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, "hello may only be sent once, as the first message")
        else:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "unknown message type on the agent link; is the agent newer than this gateway?",
            )

    async def _on_event(self, stream: AgentStream, event: pb.Event) -> None:
        if event.seq <= 0:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, "event seq must be a positive integer")
        if not event.type:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, f"event {event.seq} has no type")
        if len(event.payload_json) > MAX_EVENT_PAYLOAD:
            raise StreamError(
                grpc.StatusCode.INVALID_ARGUMENT, f"event {event.seq} payload exceeds {MAX_EVENT_PAYLOAD} bytes"
            )
        try:
            payload = json.loads(event.payload_json or "{}")
        except ValueError as exc:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, f"event {event.seq} payload is not JSON") from exc
        if not isinstance(payload, dict):
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, f"event {event.seq} payload must be a JSON object")
        occurred = (
            datetime.fromtimestamp(event.occurred_at_unix_ms / 1000, UTC) if event.occurred_at_unix_ms else utcnow()
        )
        agent_id = stream.agent_id

        def apply(session: Session) -> bool:
            agent = session.get(Agent, agent_id)
            assert agent is not None
            return apply_event(
                session,
                agent=agent,
                seq=event.seq,
                type_=event.type,
                payload_json=event.payload_json or "{}",
                occurred_at=occurred,
            )

        await self.db.run(apply)
        # Acked only after the commit: an acked event is never lost.
        stream.send(pb.ControlMessage(event_ack=pb.EventAck(seq=event.seq)))
        self.registry.touch(agent_id)

    async def _on_ack(self, stream: AgentStream, ack: pb.CommandAck) -> None:
        agent_id = stream.agent_id
        await self.db.run(
            lambda s: record_ack(
                s,
                agent_id=agent_id,
                command_id=ack.command_id,
                ok=ack.ok,
                result_json=ack.result_json,
                error=ack.error[:2000],
            )
        )
        stream.send(pb.ControlMessage(command_ack_receipt=pb.CommandAckReceipt(command_id=ack.command_id)))
        self.registry.touch(agent_id)

    async def _on_renew(self, stream: AgentStream, csr_pem: bytes) -> None:
        agent_id = stream.agent_id

        def renew(session: Session) -> pb.RenewResponse:
            agent = session.get(Agent, agent_id)
            assert agent is not None
            signed = issue_certificate(
                session,
                self.ca,
                agent,
                csr_pem,
                lifetime_seconds=self.settings.cert_lifetime_seconds,
                backdate_seconds=self.settings.cert_backdate_seconds,
            )
            audit.record(
                session,
                tenant_id=agent.tenant_id,
                actor=f"agent:{agent.id}",
                action="agent.certificate.renew",
                target_type="agent",
                target_id=agent.id,
                details={"serial": signed.serial},
            )
            return pb.RenewResponse(
                certificate_pem=signed.pem,
                ca_chain_pem=self.ca.cert_pem,
                not_after_unix=int(signed.not_after.timestamp()),
            )

        try:
            response = await self.db.run(renew)
        except MallardError as exc:
            raise StreamError(exc.grpc_code, f"certificate renewal refused: {exc.message}") from exc
        stream.send(pb.ControlMessage(renewed=response))

    async def deliver_open_commands(self, streams: list[AgentStream]) -> int:
        """Send each stream the commands it has not acked (all of them after a reconnect)."""
        by_agent = {s.agent_id: s for s in streams if not s.closed}
        if not by_agent:
            return 0
        commands = await self.db.run(lambda s: open_commands(s, list(by_agent)), retries=3)
        to_send = [c for c in commands if c.id not in by_agent[c.agent_id].sent_commands]
        if not to_send:
            return 0
        ids = [c.id for c in to_send]
        await self.db.run(lambda s: mark_delivered(s, ids))  # before sending; see GatewayServer
        for command in to_send:
            stream = by_agent[command.agent_id]
            stream.sent_commands.add(command.id)
            stream.send(command_message(command))
        return len(to_send)
