"""An asyncio client for the replica protocol (mallard.serving.replica), with a keep-alive pool.

One `ReplicaClient` per replica address. Each connection carries one request at a time; idle
connections are kept for reuse (up to `max_idle`). A request on a reused connection that the
replica closed meanwhile (keep-alive race, replica restarted) is retried once on a new
connection, since nothing was predicted for it.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque

import pyarrow as pa

from mallard.serving.wire import ARROW_STREAM, decode_table, encode_table


class ReplicaUnreachable(Exception):
    """The replica did not answer (refused, reset, or closed before a response)."""


class ReplicaError(Exception):
    """The replica answered with an error status; `code` and `message` come from its JSON body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ReplicaUnreachable(f"the replica closed the connection ({exc or 'EOF'})"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        length, close = 0, False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                close = value.strip().lower() == "close"
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(memoryview(self.buffer)[end + 4 : end + 4 + length])  # one copy, not two
        del self.buffer[: end + 4 + length]
        status = int(head[0].split(" ", 2)[1])
        if close:
            self.close()
        if not self.waiter.done():
            self.waiter.set_result((status, body))

    def request(self, method: str, path: str, body: bytes, content_type: str) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: replica\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        # Two writes, not head + body: a batch job's body is megabytes, and concatenating copies it.
        self.transport.write(head.encode("latin-1"))
        self.transport.write(body)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ReplicaClient:
    """Requests to one replica at `host:port` over pooled keep-alive connections."""

    def __init__(self, host: str, port: int, *, max_idle: int = 64, connect_timeout: float = 2.0) -> None:
        self.host, self.port = host, port
        self.max_idle = max_idle
        self.connect_timeout = connect_timeout
        self._idle: deque[_Connection] = deque()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise ReplicaUnreachable(f"cannot connect to the replica at {self.host}:{self.port}: {exc}") from exc
        return protocol

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = ARROW_STREAM
    ) -> tuple[int, bytes]:
        """(status, body); ReplicaUnreachable when no answer came. Cancelling drops the connection."""
        for attempt in (0, 1):
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if not candidate.closed:
                    conn = candidate
                    break
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                answer = await conn.request(method, path, body, content_type)
            except ReplicaUnreachable:
                conn.close()
                if reused and attempt == 0:
                    continue  # a stale keep-alive connection: nothing was predicted
                raise
            except BaseException:
                conn.close()  # cancelled or timed out mid-request: the answer would arrive late
                raise
            conn.waiter = None
            if not conn.closed and len(self._idle) < self.max_idle:
                self._idle.append(conn)
            else:
                conn.close()
            return answer
        raise AssertionError("unreachable")

    async def predict(self, table: pa.Table) -> pa.Table:
        """The replica's answer for `table`; ReplicaError for an error answer."""
        status, body = await self.request("POST", "/predict", encode_table(table))
        if status == 200:
            return decode_table(body)
        raise error_from_answer(status, body)

    async def get_json(self, path: str) -> tuple[int, dict[str, object]]:
        status, body = await self.request("GET", path, b"", "application/json")
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            data = {"message": body[:200].decode("utf-8", "replace")}
        return status, data if isinstance(data, dict) else {"value": data}

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def error_from_answer(status: int, body: bytes) -> ReplicaError:
    try:
        data = json.loads(body)
        return ReplicaError(status, str(data.get("code", "error")), str(data.get("message", "")))
    except (ValueError, AttributeError):
        return ReplicaError(status, "error", body[:500].decode("utf-8", "replace"))
