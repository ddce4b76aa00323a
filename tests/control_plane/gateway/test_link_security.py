"""The agent link trusts only certificates this control plane issued and has not revoked."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from control_plane.db import session_scope
from control_plane.models import Agent, AgentEvent
from control_plane.services.agents import revoke_agent
from shared.identity import AgentIdentity
from shared.protos.mallard.v1 import agent_link_pb2 as pb
from shared.protos.mallard.v1 import agent_link_pb2_grpc as pb_grpc
from tests.helpers.factories import make_join_token, make_tenant
from tests.helpers.grpc_client import enroll, link_channel, mint_certificate
from tests.helpers.stack import ControlPlane

HELLO = pb.AgentMessage(hello=pb.Hello(version="test", capabilities=["x"]))


class LiveStream:
    """A raw Connect stream driven from a test thread."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._outgoing: queue.Queue[pb.AgentMessage | None] = queue.Queue()
        self.call = pb_grpc.AgentLinkStub(channel).Connect(self._requests())
        self.received: queue.Queue[pb.ControlMessage | grpc.RpcError] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _requests(self) -> Iterator[pb.AgentMessage]:
        while True:
            item = self._outgoing.get()
            if item is None:
                return
            yield item

    def _read(self) -> None:
        try:
            for message in self.call:
                self.received.put(message)
        except grpc.RpcError as exc:
            self.received.put(exc)

    def send(self, message: pb.AgentMessage) -> None:
        self._outgoing.put(message)

    def next(self, timeout: float = 10) -> pb.ControlMessage | grpc.RpcError:
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self._outgoing.put(None)
        self.call.cancel()


def enrolled(cp: ControlPlane) -> tuple[str, bytes, bytes]:
    tenant = make_tenant(cp.database_url, "acme")
    response, key = enroll(cp.enroll_address, cp.ca_file, make_join_token(cp.database_url, tenant))
    return response.agent_id, key, bytes(response.certificate_pem)


def tenant_of(cp: ControlPlane, agent_id: str) -> str:
    with session_scope(cp.database_url) as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None
        return agent.tenant_id


def open_stream(cp: ControlPlane, key: bytes | None, cert: bytes | None) -> tuple[grpc.Channel, LiveStream]:
    channel = link_channel(cp.link_address, cp.ca_file, key, cert)
    stream = LiveStream(channel)
    stream.send(HELLO)
    return channel, stream


def test_valid_certificate_gets_a_welcome(gateway: ControlPlane) -> None:
    agent_id, key, cert = enrolled(gateway)
    channel, stream = open_stream(gateway, key, cert)
    first = stream.next()
    assert isinstance(first, pb.ControlMessage) and first.welcome.agent_id == agent_id
    assert first.welcome.intervals.heartbeat_ms == gateway.heartbeat_ms
    stream.close()
    channel.close()


def test_foreign_ca_is_refused_at_the_handshake(gateway: ControlPlane, tmp_path: Path) -> None:
    agent_id, _key, _cert = enrolled(gateway)
    key, cert, _ = mint_certificate(
        tmp_path / "foreign-ca",
        AgentIdentity("ten_x", agent_id),
        lifetime=timedelta(hours=1),
        backdate=timedelta(minutes=5),
    )
    channel, stream = open_stream(gateway, key, cert)
    result = stream.next()
    assert isinstance(result, grpc.RpcError)
    # The TLS handshake fails, so no RPC ever reaches the servicer.
    assert result.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()
    with session_scope(gateway.database_url) as session:
        assert session.get(Agent, agent_id).connected is False  # type: ignore[union-attr]


def test_missing_client_certificate_is_refused_at_the_handshake(gateway: ControlPlane) -> None:
    channel, stream = open_stream(gateway, None, None)
    result = stream.next()
    assert isinstance(result, grpc.RpcError) and result.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


def test_expired_certificate_is_refused(gateway: ControlPlane) -> None:
    agent_id, _key, _cert = enrolled(gateway)
    tenant_id = tenant_of(gateway, agent_id)
    key, cert, _ = mint_certificate(
        gateway.home / "pki",
        AgentIdentity(tenant_id, agent_id),
        lifetime=timedelta(seconds=-60),
        backdate=timedelta(hours=1),
        record_in=gateway.database_url,
    )
    channel, stream = open_stream(gateway, key, cert)
    result = stream.next()
    assert isinstance(result, grpc.RpcError)
    assert result.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
    channel.close()


def test_certificate_not_issued_by_the_gateway_is_refused(gateway: ControlPlane) -> None:
    """Signed by our CA but never recorded (e.g. a stolen CA backup): refused at stream open."""
    agent_id, _key, _cert = enrolled(gateway)
    tenant_id = tenant_of(gateway, agent_id)
    key, cert, _ = mint_certificate(
        gateway.home / "pki",
        AgentIdentity(tenant_id, agent_id),
        lifetime=timedelta(hours=1),
        backdate=timedelta(minutes=5),
    )
    channel, stream = open_stream(gateway, key, cert)
    result = stream.next()
    assert isinstance(result, grpc.RpcError) and result.code() == grpc.StatusCode.PERMISSION_DENIED
    channel.close()


def test_revoked_agent_is_refused_and_its_live_stream_cut_within_two_seconds(gateway: ControlPlane) -> None:
    agent_id, key, cert = enrolled(gateway)
    channel, stream = open_stream(gateway, key, cert)
    assert isinstance(stream.next(), pb.ControlMessage)  # welcome: the stream is live
    tenant_id = tenant_of(gateway, agent_id)
    with session_scope(gateway.database_url) as session:
        revoke_agent(session, tenant_id=tenant_id, agent_id=agent_id, actor="test")
        session.commit()
    revoked_at = time.monotonic()
    while True:
        item = stream.next(timeout=5)
        if isinstance(item, grpc.RpcError):
            break
    assert time.monotonic() - revoked_at < 2.0
    assert item.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "revoked" in item.details()
    channel.close()

    channel, stream = open_stream(gateway, key, cert)
    again = stream.next()
    assert isinstance(again, grpc.RpcError) and again.code() == grpc.StatusCode.PERMISSION_DENIED
    channel.close()


# ---- bad input on the stream -------------------------------------------------------------


def raw_connect(
    cp: ControlPlane, key: bytes, cert: bytes, frames: list[bytes], options: list[tuple[str, int]] | None = None
) -> grpc.RpcError:
    channel = link_channel(cp.link_address, cp.ca_file, key, cert, options)
    call = channel.stream_stream("/mallard.v1.AgentLink/Connect", request_serializer=None, response_deserializer=None)(
        iter(frames), timeout=10
    )
    try:
        with pytest.raises(grpc.RpcError) as err:
            for _ in call:
                pass
        return err.value
    finally:
        channel.close()


def test_garbage_bytes_get_invalid_argument(gateway: ControlPlane) -> None:
    _agent, key, cert = enrolled(gateway)
    err = raw_connect(gateway, key, cert, [b"\xff\xff\xff\xff\x0f garbage"])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid mallard.v1.AgentMessage" in err.details()


def test_first_message_must_be_hello(gateway: ControlPlane) -> None:
    _agent, key, cert = enrolled(gateway)
    beat = pb.AgentMessage(heartbeat=pb.Heartbeat(sent_at_unix_ms=1)).SerializeToString()
    err = raw_connect(gateway, key, cert, [beat])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be hello" in err.details()


def test_unknown_message_type_gets_invalid_argument(gateway: ControlPlane) -> None:
    _agent, key, cert = enrolled(gateway)
    # field 99 is not part of AgentMessage: a newer agent's message type, or junk
    unknown = b"\x9a\x06\x03abc"
    err = raw_connect(gateway, key, cert, [HELLO.SerializeToString(), unknown])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown message type" in err.details()


def test_oversized_message_gets_resource_exhausted(gateway: ControlPlane) -> None:
    _agent, key, cert = enrolled(gateway)
    huge = pb.AgentMessage(event=pb.Event(seq=1, type="x", payload_json="{}" + " " * (2 << 20))).SerializeToString()
    err = raw_connect(
        gateway, key, cert, [HELLO.SerializeToString(), huge], options=[("grpc.max_send_message_length", 8 << 20)]
    )
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with session_scope(gateway.database_url) as session:
        from sqlmodel import select

        assert session.exec(select(AgentEvent).where(AgentEvent.type == "x")).all() == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (pb.Event(seq=1, type="t", payload_json="{not json"), "not JSON"),
        (pb.Event(seq=1, type="t", payload_json="[1, 2]"), "JSON object"),
        (pb.Event(seq=0, type="t", payload_json="{}"), "positive"),
        (pb.Event(seq=1, type="", payload_json="{}"), "no type"),
    ],
)
def test_invalid_events_are_refused_and_not_stored(gateway: ControlPlane, event: pb.Event, message: str) -> None:
    _agent, key, cert = enrolled(gateway)
    err = raw_connect(gateway, key, cert, [HELLO.SerializeToString(), pb.AgentMessage(event=event).SerializeToString()])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.details()
    with session_scope(gateway.database_url) as session:
        from sqlmodel import select

        assert session.exec(select(AgentEvent)).all() == []
