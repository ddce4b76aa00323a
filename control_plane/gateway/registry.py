"""Live agent streams in this gateway process: one per agent, each with an outgoing queue."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc

from shared.protos.mallard.v1 import agent_link_pb2 as pb


@dataclass(frozen=True)
class Close:
    """Tells a stream's writer to end the RPC with this status."""

    code: grpc.StatusCode
    details: str


@dataclass
class AgentStream:
    agent_id: str
    tenant_id: str
    serial: str
    not_after: datetime
    outbox: asyncio.Queue[pb.ControlMessage | Close] = field(default_factory=asyncio.Queue)
    sent_commands: set[str] = field(default_factory=set)
    closed: bool = False

    def send(self, message: pb.ControlMessage) -> None:
        if not self.closed:
            self.outbox.put_nowait(message)

    def close(self, code: grpc.StatusCode, details: str) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put_nowait(Close(code, details))


class StreamRegistry:
    """Which agents are connected here, and when each was last heard from."""

    def __init__(self) -> None:
        self._streams: dict[str, AgentStream] = {}
        self.last_seen: dict[str, datetime] = {}
        # Agents heard from since the last flush to the database; only these are written.
        self.dirty: dict[str, datetime] = {}

    def touch(self, agent_id: str) -> None:
        now = datetime.now(UTC)
        self.last_seen[agent_id] = now
        self.dirty[agent_id] = now

    def take_dirty(self) -> dict[str, datetime]:
        """The agents heard from since the last call (only those still connected here)."""
        dirty, self.dirty = self.dirty, {}
        return {a: t for a, t in dirty.items() if a in self._streams}

    def add(self, stream: AgentStream) -> None:
        previous = self._streams.get(stream.agent_id)
        if previous is not None:
            previous.close(grpc.StatusCode.ABORTED, "replaced by a newer stream from the same agent")
        self._streams[stream.agent_id] = stream

    def remove(self, stream: AgentStream) -> bool:
        """Forget `stream` if it is still the current one for its agent."""
        if self._streams.get(stream.agent_id) is stream:
            del self._streams[stream.agent_id]
            return True
        return False

    def get(self, agent_id: str) -> AgentStream | None:
        return self._streams.get(agent_id)

    def streams(self) -> list[AgentStream]:
        return list(self._streams.values())

    def __len__(self) -> int:
        return len(self._streams)
