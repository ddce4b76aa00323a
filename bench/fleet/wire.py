"""The bytes the simulated agents exchange: the real AgentLink protocol, or the echo peer's."""

from __future__ import annotations

import struct
import time
from typing import Protocol

from shared.protos.mallard.v1 import agent_link_pb2 as pb

# Command acks for ids with this prefix match no command row; the gateway still answers each
# with a CommandAckReceipt after its (no-op) update, which makes them usable as stream markers.
MARKER_PREFIX = "bench-marker-"
ECHO_METHOD = "/bench.v1.Echo/Stream"


class Wire(Protocol):
    """Builds the messages of one protocol and names the ones that come back."""

    method: str

    def hello(self) -> bytes: ...
    def is_welcome(self, message: bytes) -> bool: ...
    def heartbeat(self) -> bytes: ...
    def marker(self, ident: str) -> bytes: ...
    def ping(self, ident: str) -> bytes: ...
    def command_ack(self, command_id: str) -> bytes: ...

    def classify(self, message: bytes) -> tuple[str, str]:
        """(kind, id): kind is command, receipt, marker, pong or other."""
        ...


class MallardWire:
    method = "/mallard.v1.AgentLink/Connect"

    def hello(self) -> bytes:
        hello = pb.Hello(version="bench", capabilities=["describe", "ping"], hostname="bench")
        return pb.AgentMessage(hello=hello).SerializeToString()

    def is_welcome(self, message: bytes) -> bool:
        return pb.ControlMessage.FromString(message).WhichOneof("body") == "welcome"

    def heartbeat(self) -> bytes:
        beat = pb.Heartbeat(sent_at_unix_ms=int(time.time() * 1000))
        return pb.AgentMessage(heartbeat=beat).SerializeToString()

    def marker(self, ident: str) -> bytes:
        return pb.AgentMessage(command_ack=pb.CommandAck(command_id=ident, ok=True)).SerializeToString()

    def ping(self, ident: str) -> bytes:
        raise NotImplementedError("the gateway has no ping; the benchmark sends it commands instead")

    def command_ack(self, command_id: str) -> bytes:
        ack = pb.CommandAck(command_id=command_id, ok=True, result_json='{"pong": true}')
        return pb.AgentMessage(command_ack=ack).SerializeToString()

    def classify(self, message: bytes) -> tuple[str, str]:
        control = pb.ControlMessage.FromString(message)
        kind = control.WhichOneof("body")
        if kind == "command":
            return "command", control.command.id
        if kind == "command_ack_receipt":
            ident = control.command_ack_receipt.command_id
            return ("marker" if ident.startswith(MARKER_PREFIX) else "receipt"), ident
        return "other", ""


class EchoWire:
    """A one-byte tag then a payload; the echo server returns everything except heartbeats."""

    method = ECHO_METHOD

    def hello(self) -> bytes:
        return b"c"

    def is_welcome(self, message: bytes) -> bool:
        return message[:1] == b"c"

    def heartbeat(self) -> bytes:
        # About the size of a serialized AgentMessage(heartbeat=...).
        return b"h" + struct.pack(">q", int(time.time() * 1000))

    def marker(self, ident: str) -> bytes:
        return b"m" + ident.encode()

    def ping(self, ident: str) -> bytes:
        return b"p" + ident.encode()

    def command_ack(self, command_id: str) -> bytes:
        raise NotImplementedError("the echo peer sends no commands")

    def classify(self, message: bytes) -> tuple[str, str]:
        tag, ident = message[:1], message[1:].decode()
        return {b"m": "marker", b"p": "pong"}.get(tag, "other"), ident


def wire_for(mode: str) -> Wire:
    return MallardWire() if mode == "mallard" else EchoWire()
