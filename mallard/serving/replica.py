"""`python -m mallard.serving.replica --model-dir DIR --host 127.0.0.1 --port P`: serve one model.

The protocol is lean HTTP/1.1 with keep-alive, on loopback only:

    GET  /ready     200 once the model is loaded, 503 before
    GET  /stats     200 {"requests", "rows", "predict_calls", "largest_batch"} (JSON)
    POST /predict   body: an Arrow IPC stream of input rows -> 200 and an Arrow IPC stream of
                    output rows, or a JSON error {"code", "message"} with status 400 (the body is
                    not Arrow), 413 (too large), 500 (predict() raised) or 503 (not loaded yet)

Adaptive micro-batching: requests that arrive while `predict()` runs are concatenated into the
next call and its answer is split back per request. A request arriving at an idle replica is
predicted at once (no added wait). Predictions run on the event loop's own thread: requests
that arrive meanwhile wait in the socket buffers and are all read before the next batch starts,
so batching needs no thread handoff. If a batched call fails, its requests are retried one by
one so that one bad request does not fail the others.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mallard.serving.wire import ARROW_STREAM, decode_table, encode_table, frame_to_table, table_to_frame

MAX_HEADER_BYTES = 16 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large"}
_REASONS |= {500: "Internal Server Error", 503: "Service Unavailable"}


EXIT_LOAD_FAILED = 3  # the supervisor reports these instead of restarting blindly
EXIT_BIND_FAILED = 4  # the port was taken: the supervisor retries on another port


class _BindFailed(Exception):
    """The replica could not listen on its port."""


class _Failed(Exception):
    """A request's answer is an error with this HTTP status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Pending:
    connection: _Connection
    table: pa.Table
    cancelled: bool = False


@dataclass
class Stats:
    """What the replica has done; `predict_calls < requests` shows that batching happened."""

    requests: int = 0
    rows: int = 0
    predict_calls: int = 0
    largest_batch: int = 0

    def to_json(self) -> bytes:
        return json.dumps(self.__dict__).encode()


@dataclass
class Replica:
    """The loaded model and the micro-batching queue in front of it."""

    max_batch_rows: int = 4096
    max_body_bytes: int = 64 * 1024 * 1024
    model: Any = None
    stats: Stats = field(default_factory=Stats)
    _queue: list[_Pending] = field(default_factory=list)
    _scheduled: bool = False

    def submit(self, pending: _Pending) -> None:
        self._queue.append(pending)
        if not self._scheduled:
            self._scheduled = True
            # call_soon runs after every read callback of this loop iteration: requests that
            # arrived together (or during the previous predict) are all queued by then.
            asyncio.get_running_loop().call_soon(self._run_batch)

    def _run_batch(self) -> None:
        self._scheduled = False
        batch: list[_Pending] = []
        rows = 0
        while self._queue and (not batch or rows + self._queue[0].table.num_rows <= self.max_batch_rows):
            item = self._queue.pop(0)
            if not item.cancelled:
                batch.append(item)
                rows += item.table.num_rows
        if self._queue:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run_batch)
        # Only tables of one schema can be concatenated; a batch is usually all one schema.
        groups: dict[pa.Schema, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.table.schema, []).append(item)
        for items in groups.values():
            for item, answer in zip(items, self._predict_group([i.table for i in items]), strict=True):
                item.connection.answer(answer)

    def _predict_group(self, tables: list[pa.Table]) -> list[pa.Table | _Failed]:
        try:
            return self._predict(tables)
        except _Failed as exc:
            if len(tables) == 1:
                return [exc]
        answers: list[pa.Table | _Failed] = []
        for table in tables:
            try:
                answers.extend(self._predict([table]))
            except _Failed as exc:
                answers.append(exc)
        return answers

    def _predict(self, tables: list[pa.Table]) -> list[pa.Table]:
        combined = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        self.stats.predict_calls += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(tables))
        try:
            result = self.model.predict(table_to_frame(combined))
            outputs = frame_to_table(result)
        except Exception as exc:
            tail = traceback.format_exception_only(exc)[-1].strip()
            raise _Failed(500, "model_failed", f"predict() raised {tail}") from exc
        if outputs.num_rows != combined.num_rows:
            raise _Failed(
                500,
                "model_failed",
                f"predict() returned {outputs.num_rows} rows for {combined.num_rows} input rows",
            )
        if len(tables) == 1:
            return [outputs]
        answers, offset = [], 0
        for table in tables:
            answers.append(outputs.slice(offset, table.num_rows))
            offset += table.num_rows
        return answers


class _Connection(asyncio.Protocol):
    """One keep-alive connection; requests on it are answered in order, one at a time."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: _Pending | None = None  # the request being predicted
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiting is not None:
            self.waiting.cancelled = True  # the client gave up (timeout): do not predict for it

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiting is None:
            self._next_request()

    def _next_request(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self._respond(400, _error("bad_request", "request headers too large"), close=True)
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) != 3:
            self._respond(400, _error("bad_request", "malformed request line"), close=True)
            return
        method, path, version = parts
        length, connection = 0, ""
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip()) if value.strip().isdigit() else -1
            elif name == "connection":
                connection = value.strip().lower()
        self.close_after = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if length < 0 or length > self.replica.max_body_bytes:
            message = f"the request body must be at most {self.replica.max_body_bytes} bytes"
            self._respond(413, _error("too_large", message), close=True)
            return
        if len(self.buffer) < end + 4 + length:
            return
        if len(self.buffer) == end + 4 + length:
            # The buffer holds exactly this request (no pipelined one behind it): take it as the
            # body instead of copying megabytes out of it; the next request gets a new buffer.
            body = memoryview(self.buffer)[end + 4 :]
            self.buffer = bytearray()
        else:
            body = memoryview(bytes(memoryview(self.buffer)[end + 4 : end + 4 + length]))
            del self.buffer[: end + 4 + length]
        self._dispatch(method, path.split("?", 1)[0], body)

    def _dispatch(self, method: str, path: str, body: memoryview) -> None:
        replica = self.replica
        if path == "/predict":
            if method != "POST":
                self._respond(405, _error("method_not_allowed", "use POST /predict"))
            elif replica.model is None:
                self._respond(503, _error("not_ready", "the model is still loading"))
            else:
                try:
                    table = decode_table(body)
                except (pa.ArrowInvalid, OSError) as exc:
                    self._respond(400, _error("malformed_arrow", f"the body is not an Arrow IPC stream: {exc}"))
                    return
                replica.stats.requests += 1
                replica.stats.rows += table.num_rows
                self.waiting = _Pending(self, table)
                replica.submit(self.waiting)
        elif path == "/ready":
            ready = replica.model is not None
            self._respond(200 if ready else 503, b'{"ready": %s}' % (b"true" if ready else b"false"))
        elif path == "/stats":
            self._respond(200, replica.stats.to_json())
        else:
            self._respond(404, _error("not_found", f"no route {method} {path}"))

    def answer(self, answer: pa.Table | _Failed) -> None:
        self.waiting = None
        if isinstance(answer, _Failed):
            self._respond(answer.status, _error(answer.code, answer.message))
        else:
            self._respond(200, encode_table(answer), content_type=ARROW_STREAM)

    def _respond(
        self, status: int, body: bytes, *, content_type: str = "application/json", close: bool = False
    ) -> None:
        if self.transport is None:
            return
        close = close or self.close_after
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{'Connection: close' if close else 'Connection: keep-alive'}\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1"))
        self.transport.write(body)
        if close:
            self.transport.close()
            return
        if self.buffer:
            self._next_request()  # a pipelined request


def _error(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


async def serve(model_dir: Path, host: str, port: int, replica: Replica) -> None:
    """Bind, load the model (answering /ready with 503 meanwhile), serve until SIGTERM/SIGINT."""
    from mallard.state import load_model

    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(lambda: _Connection(replica), host, port, backlog=1024)
    except OSError as exc:
        raise _BindFailed(f"cannot listen on {host}:{port}: {exc}") from exc
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    replica.model = await asyncio.to_thread(load_model, model_dir)
    print(f"mallard replica: serving {model_dir} on http://{host}:{port}", flush=True)
    await stop.wait()
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 5)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (3: the model did not load, 4: the port was taken)."""
    parser = argparse.ArgumentParser(prog="python -m mallard.serving.replica", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, type=Path, help="a saved model directory (mallard.state)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--max-batch-rows", type=int, default=4096, help="rows predicted together at most")
    parser.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024)
    args = parser.parse_args(argv)
    replica = Replica(max_batch_rows=args.max_batch_rows, max_body_bytes=args.max_body_bytes)
    try:
        asyncio.run(serve(args.model_dir, args.host, args.port, replica))
    except _BindFailed as exc:
        print(f"mallard replica: {exc}", file=sys.stderr, flush=True)
        return EXIT_BIND_FAILED
    except Exception as exc:
        print(f"mallard replica: cannot load the model in {args.model_dir}: {exc}", file=sys.stderr, flush=True)
        return EXIT_LOAD_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
