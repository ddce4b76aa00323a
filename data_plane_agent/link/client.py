"""The agent's link to the control plane: one mTLS bidi stream, reconnected with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc

from data_plane_agent.commands import CAPABILITIES, CommandContext, CommandFailed, run_command
from data_plane_agent.link.backoff import Backoff
from data_plane_agent.link.enroll import channel_options
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.settings import AgentSettings
from shared import __version__
from shared.identity import AgentIdentity
from shared.keys import build_csr, generate_private_key, private_key_pem
from shared.protos.mallard.v1 import agent_link_pb2 as pb
from shared.protos.mallard.v1 import agent_link_pb2_grpc as pb_grpc

log = logging.getLogger("mallard.agent.link")


class Reconnect(Exception):
    """End this stream and dial again at once (e.g. to present a renewed certificate)."""


@dataclass
class LinkState:
    """What the rest of the agent (health endpoint, CLI) can see about the link."""

    connected: bool = False
    connects: int = 0
    last_error: str = ""
    last_welcome_at: float = 0.0
    heartbeat_ms: int = 10_000
    cert_not_after: datetime | None = None
    in_flight_commands: set[str] = field(default_factory=set)


class LinkClient:
    def __init__(self, settings: AgentSettings, home: AgentHome, outbox: Outbox, identity: AgentIdentity) -> None:
        self.settings = settings
        self.home = home
        self.outbox = outbox
        self.identity = identity
        self.state = LinkState()
        self.run_id = uuid.uuid4().hex
        self._stopping = asyncio.Event()
        self._events_appended = asyncio.Event()
        self._command_slots = asyncio.Semaphore(settings.max_concurrent_commands)
        self._started = time.monotonic()
        self._command_tasks: set[asyncio.Task[None]] = set()
        self._in_flight_events: set[int] = set()
        self._pending_key: bytes | None = None
        # The current stream's send queue; None while disconnected. Command acks go to
        # whichever stream is live when the command finishes, not the one it arrived on.
        self._send_queue: asyncio.Queue[pb.AgentMessage | None] | None = None

    def notify_event(self) -> None:
        """Wake the outbox pump (events appended in this process)."""
        self._events_appended.set()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        backoff = Backoff(self.settings.backoff_initial_seconds, self.settings.backoff_max_seconds)
        while not self._stopping.is_set():
            reconnect_now = False
            try:
                await self._session(backoff)
            except Reconnect:
                reconnect_now = True
            except grpc.aio.AioRpcError as exc:
                self.state.last_error = f"{exc.code().name}: {exc.details()}"
                level = logging.ERROR if exc.code() == grpc.StatusCode.PERMISSION_DENIED else logging.WARNING
                log.log(level, "link to %s lost: %s", self.settings.control_plane, self.state.last_error)
            except (OSError, ValueError) as exc:
                self.state.last_error = str(exc)
                log.warning("link error: %s", exc)
            finally:
                self.state.connected = False
            if self._stopping.is_set():
                break
            delay = 0.0 if reconnect_now else backoff.next_delay()
            if delay:
                log.info("reconnecting in %.2fs", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        for task in list(self._command_tasks):
            task.cancel()

    async def _session(self, backoff: Backoff) -> None:
        creds = self.home.credentials()
        if creds.not_after <= datetime.now(UTC):
            raise ValueError(
                f"the agent certificate expired at {creds.not_after.isoformat()}; "
                f"re-enroll: remove {self.home.identity_file} and start with a new --join-token"
            )
        self.state.cert_not_after = creds.not_after
        channel_creds = grpc.ssl_channel_credentials(
            root_certificates=creds.ca_pem, private_key=creds.key_pem, certificate_chain=creds.cert_pem
        )
        async with grpc.aio.secure_channel(
            self.settings.control_plane, channel_creds, options=channel_options(self.settings)
        ) as channel:
            call = pb_grpc.AgentLinkStub(channel).Connect()
            send_queue: asyncio.Queue[pb.AgentMessage | None] = asyncio.Queue()
            await call.write(
                pb.AgentMessage(
                    hello=pb.Hello(
                        version=__version__,
                        capabilities=CAPABILITIES,
                        data_plane_url=self.settings.effective_data_plane_url,
                        hostname=socket.gethostname(),
                    )
                )
            )
            first = await call.read()
            if first is grpc.aio.EOF or first.WhichOneof("body") != "welcome":
                await call.code()  # raises the server's status if it ended the call
                raise ValueError("control plane did not send a welcome")
            welcome = first.welcome
            self._on_welcome(welcome)
            self._send_queue = send_queue
            backoff.reset()
            acked = asyncio.Event()
            tasks = [
                asyncio.create_task(self._writer(call, send_queue), name="writer"),
                asyncio.create_task(self._heartbeats(send_queue), name="heartbeats"),
                asyncio.create_task(self._pump_outbox(send_queue, acked), name="outbox"),
                asyncio.create_task(self._renewal(send_queue), name="renewal"),
                asyncio.create_task(self._reader(call, acked), name="reader"),
                asyncio.create_task(self._stopping.wait(), name="stop"),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.get_name() == "stop":
                        await self._drain(send_queue)
                        with contextlib.suppress(Exception):
                            await call.done_writing()
                    elif task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            finally:
                self._send_queue = None
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                call.cancel()

    def _on_welcome(self, welcome: pb.Welcome) -> None:
        self.state.connected = True
        self.state.connects += 1
        self.state.last_welcome_at = time.time()
        self.state.last_error = ""
        if welcome.intervals.heartbeat_ms:
            self.state.heartbeat_ms = welcome.intervals.heartbeat_ms
        self.outbox.ensure_sequence_above(welcome.last_event_seq)
        self.home.save_jwt_public_key(bytes(welcome.jwt_public_key_pem))
        log.info("connected to %s as %s", self.settings.control_plane, welcome.agent_id)

    async def _drain(self, send_queue: asyncio.Queue[pb.AgentMessage | None], timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while not send_queue.empty() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _writer(self, call: grpc.aio.StreamStreamCall, send_queue: asyncio.Queue[pb.AgentMessage | None]) -> None:
        while True:
            message = await send_queue.get()
            if message is None:
                return
            await call.write(message)

    async def _heartbeats(self, send_queue: asyncio.Queue[pb.AgentMessage | None]) -> None:
        while True:
            send_queue.put_nowait(pb.AgentMessage(heartbeat=pb.Heartbeat(sent_at_unix_ms=int(time.time() * 1000))))
            await asyncio.sleep(self.state.heartbeat_ms / 1000)

    async def _pump_outbox(self, send_queue: asyncio.Queue[pb.AgentMessage | None], acked: asyncio.Event) -> None:
        """Send every unacked event once per stream, keeping at most `outbox_window` in flight."""
        sent_up_to = 0
        in_flight: set[int] = set()
        self._in_flight_events = in_flight
        while True:
            room = self.settings.outbox_window - len(in_flight)
            if room > 0:
                batch = self.outbox.unacked(after_seq=sent_up_to, limit=room)
                for event in batch:
                    send_queue.put_nowait(
                        pb.AgentMessage(
                            event=pb.Event(
                                seq=event.seq,
                                type=event.type,
                                payload_json=event.payload_json,
                                occurred_at_unix_ms=event.occurred_at_ms,
                            )
                        )
                    )
                    in_flight.add(event.seq)
                    sent_up_to = event.seq
                if batch:
                    continue
            self._events_appended.clear()
            acked.clear()
            # Other processes may append too, so poll as well as wait for a wake-up.
            waiters = [asyncio.create_task(self._events_appended.wait()), asyncio.create_task(acked.wait())]
            try:
                await asyncio.wait(waiters, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def _reader(self, call: grpc.aio.StreamStreamCall, acked: asyncio.Event) -> None:
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                await call.code()
                raise ConnectionError("control plane ended the stream")
            kind = message.WhichOneof("body")
            if kind == "event_ack":
                self.outbox.ack(message.event_ack.seq)
                self._in_flight_events.discard(message.event_ack.seq)
                acked.set()
            elif kind == "command":
                self._spawn_command(message.command)
            elif kind == "intervals":
                if message.intervals.heartbeat_ms:
                    self.state.heartbeat_ms = message.intervals.heartbeat_ms
            elif kind == "renewed" and self._on_renewed(message.renewed):
                raise Reconnect()  # present the new certificate on a fresh handshake
            elif kind == "command_ack_receipt":
                pass
            else:
                log.warning("ignoring an unknown message from the control plane (%s); upgrade the agent", kind)

    def _spawn_command(self, command: pb.Command) -> None:
        if command.id in self.state.in_flight_commands:
            return  # already running in this process; its ack will follow
        task = asyncio.create_task(self._execute(command))
        self._command_tasks.add(task)
        task.add_done_callback(self._command_tasks.discard)

    async def _execute(self, command: pb.Command) -> None:
        record, first = self.outbox.begin_command(command.id, command.type, self.run_id)
        if not first:
            if record.finished:
                ok, result_text, error = record.state == "succeeded", record.result_json or "", record.error or ""
            elif record.run_id != self.run_id:
                ok, result_text, error = False, "", "the agent restarted while this command ran; it was not run again"
                self.outbox.finish_command(command.id, ok=False, result_json=None, error=error)
            else:
                return
            self._send_ack(pb.CommandAck(command_id=command.id, ok=ok, result_json=result_text, error=error))
            return
        self.state.in_flight_commands.add(command.id)
        try:
            async with self._command_slots:
                self.outbox.append("command.started", {"command_id": command.id, "type": command.type})
                self.notify_event()
                ctx = CommandContext(
                    agent_id=self.identity.agent_id,
                    tenant_id=self.identity.tenant_id,
                    home=self.home.root,
                    data_plane_url=self.settings.effective_data_plane_url,
                    started_monotonic=self._started,
                )
                try:
                    spec = json.loads(command.spec_json or "{}")
                    if not isinstance(spec, dict):
                        raise CommandFailed("command spec must be a JSON object")
                    result = await run_command(ctx, command.type, spec)
                    ok, result_json, error = True, json.dumps(result), ""
                except CommandFailed as exc:
                    ok, result_json, error = False, "", str(exc)
                except Exception as exc:
                    log.exception("command %s (%s) failed", command.id, command.type)
                    ok, result_json, error = False, "", f"{type(exc).__name__}: {exc}"
            self.outbox.finish_command(command.id, ok=ok, result_json=result_json or None, error=error or None)
        finally:
            self.state.in_flight_commands.discard(command.id)
        self._send_ack(pb.CommandAck(command_id=command.id, ok=ok, result_json=result_json, error=error))

    def _send_ack(self, ack: pb.CommandAck) -> None:
        # While disconnected the ack is dropped: the control plane redelivers unacked
        # commands after the reconnect and the executed-command table answers them.
        if self._send_queue is not None:
            self._send_queue.put_nowait(pb.AgentMessage(command_ack=ack))

    async def _renewal(self, send_queue: asyncio.Queue[pb.AgentMessage | None]) -> None:
        creds = self.home.credentials()
        wait = (creds.renew_at() - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        key = generate_private_key()
        self._pending_key = private_key_pem(key)
        log.info("certificate expires at %s; requesting renewal", creds.not_after.isoformat())
        send_queue.put_nowait(pb.AgentMessage(renew=pb.RenewRequest(csr_pem=build_csr(key))))
        await asyncio.Event().wait()  # the reader handles the response

    def _on_renewed(self, renewed: pb.RenewResponse) -> bool:
        key_pem = self._pending_key
        if key_pem is None:
            log.warning("received a certificate the agent did not ask for; ignoring it")
            return False
        self.home.rotate(key_pem, bytes(renewed.certificate_pem))
        self._pending_key = None
        log.info("certificate renewed; valid until %s", datetime.fromtimestamp(renewed.not_after_unix, UTC).isoformat())
        return True
