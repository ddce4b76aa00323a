"""Engine-side micro-batching: requests to one variation that arrive while its replicas are busy
are sent together, as one Arrow table, when a call returns.

The replica batches the requests it finds waiting, but behind the agent on one core it rarely
finds more than one: each request the engine writes wakes the replica, which predicts it before
the agent forwards the next. So the engine holds requests back while a call is in flight (at
most one per routable replica), then sends everything queued with the same schema (up to
`max_rows` and `max_bytes`) as ONE concatenated table and splits the answer back by row counts.
A request that finds a replica free waits only for the requests already read in the same
event-loop iteration (one yield, no timer), then is sent by its own coroutine: no added wait at
concurrency 1.

Errors stay per request. When a batched call fails for the model (ModelFailed, InvalidInput),
its requests are sent again one by one (concurrently; the replica batches those itself and, if
that fails, predicts them one by one), so only the bad request fails. Any other error (no
replica, not ready) is every request's error. Each request keeps its own deadline wherever it
waits; a call lasts at most until the latest deadline of its requests.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from dataclasses import dataclass

import pyarrow as pa

from data_plane_agent.serving.calls import call_route
from data_plane_agent.serving.routing import Route
from mallard.serving.wire import encode_table
from shared.errors import InvalidInput, MallardError, ModelFailed, PredictionTimeout, Unavailable

MAX_BATCH_ROWS = 4096  # the replica's own default: it predicts at most this many rows at once
MAX_BATCH_BYTES = 16 * 1024 * 1024  # well under the replica's body limit (64 MiB by default)

Answer = tuple[pa.Table, str]  # (outputs, build id of the replica that answered)


@dataclass(eq=False)
class _Request:
    table: pa.Table
    future: asyncio.Future[Answer]
    deadline: float  # loop time
    timeout: float  # as the caller gave it (for the error message)


class RouteBatcher:
    """The queue in front of one variation's replicas. `route` is replaced when its replicas change."""

    def __init__(self, route: Route, *, max_rows: int = MAX_BATCH_ROWS, max_bytes: int = MAX_BATCH_BYTES) -> None:
        self.route = route
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.calls = 0  # calls to replicas in flight
        self._queue: deque[_Request] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in flight."""
        return not self.calls and not self._queue

    async def predict(self, table: pa.Table, timeout: float) -> Answer:
        """The answer for `table`; raises what `call_route` raises (PredictionTimeout after `timeout`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._queue or self.calls >= self._limit():
            return await self._wait(self._enqueue(table, deadline, timeout))
        self.calls += 1  # a replica is free: this request leads the next call
        handed_over = False
        try:
            # Requests read in the same loop iteration (their handlers are ready to run) join this
            # call; without this yield the write below would wake the replica for this one alone.
            await asyncio.sleep(0)
            if not self._queue:
                return await call_route(self.route, encode_table(table), timeout)  # the yield took ~0 s
            request = _Request(table, loop.create_future(), deadline, timeout)
            self._queue.appendleft(request)
            self._launch(self._take())  # the task takes over this call's slot
            handed_over = True
            self._pump()  # requests of another schema, when another replica is free
        finally:
            if not handed_over:
                self.calls -= 1
                self._pump()
        return await self._wait(request)

    def _enqueue(self, table: pa.Table, deadline: float, timeout: float) -> _Request:
        request = _Request(table, asyncio.get_running_loop().create_future(), deadline, timeout)
        self._queue.append(request)
        return request

    async def _wait(self, request: _Request) -> Answer:
        try:
            async with asyncio.timeout_at(request.deadline):
                return await request.future  # cancelling this cancels the future: the batch skips it
        except TimeoutError:
            raise _timed_out(self.route.name, request.timeout) from None

    def _limit(self) -> int:
        return max(1, len(self.route.replicas))

    def _pump(self) -> None:
        while self._queue and self.calls < self._limit():
            batch = self._take()
            if not batch:
                return
            self.calls += 1
            self._launch(batch)

    def _launch(self, batch: list[_Request]) -> None:
        """Send `batch` in a task of its own (it holds one of `calls`, counted by the caller)."""
        task = asyncio.create_task(self._call(batch), name=f"batch to {self.route.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Request]:
        """The oldest waiting request and every other waiting one of its schema, up to max_rows / max_bytes."""
        batch: list[_Request] = []
        rest: deque[_Request] = deque()
        schema: pa.Schema | None = None
        rows = size = 0
        for request in self._queue:
            if request.future.done():  # timed out or cancelled while queued
                continue
            n, nbytes = request.table.num_rows, request.table.nbytes
            if schema is None:
                schema, rows, size = request.table.schema, n, nbytes
                batch.append(request)
            elif rows + n <= self.max_rows and size + nbytes <= self.max_bytes and request.table.schema.equals(schema):
                rows, size = rows + n, size + nbytes
                batch.append(request)
            else:
                rest.append(request)
        self._queue = rest
        return batch

    async def _call(self, batch: list[_Request]) -> None:
        try:
            await self._send(batch)
        except asyncio.CancelledError:
            _fail(batch, Unavailable("the prediction was cancelled: the agent is shutting down"))
            raise
        except Exception as exc:  # a bug must not leave requests waiting until their timeout
            _fail(batch, exc)
        finally:
            self.calls -= 1
            self._pump()

    async def _send(self, batch: list[_Request]) -> None:
        if len(batch) == 1:
            await self._send_one(batch[0])
            return
        loop = asyncio.get_running_loop()
        table = pa.concat_tables([r.table for r in batch]).combine_chunks()
        try:
            outputs, build_id = await call_route(
                self.route, encode_table(table), max(r.deadline for r in batch) - loop.time()
            )
        except (ModelFailed, InvalidInput):
            # One request may be bad: ask again one by one, so that only its own answer is the error.
            await asyncio.gather(*(self._send_one(r) for r in batch if not r.future.done()))
            return
        except PredictionTimeout:  # every request's deadline passed
            for request in batch:
                _fail([request], _timed_out(self.route.name, request.timeout))
            return
        except MallardError as exc:
            _fail(batch, exc)
            return
        if outputs.num_rows != table.num_rows:
            message = f"the replica answered {outputs.num_rows} rows for {table.num_rows} input rows"
            _fail(batch, ModelFailed(message, details={"variation": self.route.name}))
            return
        offset = 0
        for request in batch:
            n = request.table.num_rows
            if not request.future.done():
                request.future.set_result((outputs.slice(offset, n), build_id))
            offset += n

    async def _send_one(self, request: _Request) -> None:
        if request.future.done():
            return
        timeout = request.deadline - asyncio.get_running_loop().time()
        try:
            answer = await call_route(self.route, encode_table(request.table), timeout)
        except PredictionTimeout:
            _fail([request], _timed_out(self.route.name, request.timeout))
        except Exception as exc:
            _fail([request], exc)
        else:
            if not request.future.done():
                request.future.set_result(answer)


def _fail(batch: list[_Request], exc: Exception) -> None:
    for request in batch:
        if not request.future.done():
            # each waiter raises its own copy: one instance raised in several tasks tangles tracebacks
            request.future.set_exception(copy.copy(exc) if len(batch) > 1 else exc)


def _timed_out(variation: str, timeout: float) -> PredictionTimeout:
    return PredictionTimeout(
        f"variation {variation!r} did not answer within {timeout:g}s", details={"timeout_s": timeout}
    )
