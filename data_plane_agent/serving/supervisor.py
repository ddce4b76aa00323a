"""One supervised replica: launch, wait until it answers /ready, watch it, restart it when it crashes.

A replica that never became ready (the model does not load, readiness timed out) is failed
for good: restarting it would fail the same way, and the deployment reports why. A replica
that crashes after it was ready is restarted with capped exponential backoff, each restart
reported through `on_change`. A replica that stops answering while it has nothing to do (stuck
in a predict whose request already timed out) is killed and restarted the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Callable
from enum import StrEnum

from data_plane_agent.serving.client import ReplicaClient, ReplicaUnreachable
from data_plane_agent.serving.runtimes import Prepared, ReplicaProcess, ServingRuntime

log = logging.getLogger("mallard.agent.serving")
EXIT_BIND_FAILED = 4  # mallard.serving.replica: the port was taken
_ids = itertools.count(1)


class ReplicaEvent(StrEnum):
    READY = "ready"
    DOWN = "down"  # crashed; a restart follows
    FAILED = "failed"  # gave up
    STOPPED = "stopped"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """A supervised replica of one variation's target. The engine routes to it while `routable`."""

    def __init__(
        self,
        *,
        deployment_id: str,
        variation: str,
        prepared: Prepared,
        runtime: ServingRuntime,
        on_change: Callable[[Replica, ReplicaEvent], None],
        ready_timeout: float = 180.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        liveness_interval: float = 10.0,
        liveness_timeout: float = 15.0,
    ) -> None:
        self.variation = variation
        self.prepared = prepared
        self.build_id = prepared.target.build_id
        self.name = f"{deployment_id[:24]}-{variation}-{next(_ids)}"
        self.runtime = runtime
        self.on_change = on_change
        self.ready_timeout = ready_timeout
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.liveness_interval, self.liveness_timeout = liveness_interval, liveness_timeout
        self.client: ReplicaClient | None = None
        self.ready = False
        self.routable = False  # set by the engine: ready and not retiring
        self.retiring = False
        self.inflight = 0
        self.started = 0  # requests sent, ever (tells an idle replica from a busy one)
        self.restarts = 0
        self.failure: str | None = None
        self.last_exit_code: int | None = None
        self._process: ReplicaProcess | None = None
        self._stopping = asyncio.Event()
        self._settled = asyncio.Event()  # ready once, or failed
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The process id of a local replica (None for a container, or before it runs)."""
        return getattr(self._process, "pid", None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"replica {self.name}")

    async def wait_settled(self) -> bool:
        """True once the replica has been ready; False when it failed before that (see `failure`)."""
        await self._settled.wait()
        return self.failure is None

    async def drain(self, timeout: float) -> None:
        """Wait until no request is in flight (or `timeout` passed)."""
        deadline = time.monotonic() + timeout
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        self._stopping.set()
        self.routable = False
        if self._process is not None:
            await self._process.stop(grace_seconds)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.client is not None:
            self.client.close()

    async def _supervise(self) -> None:
        backoff = self.backoff_initial
        been_ready = False
        while not self._stopping.is_set():
            port = free_port()
            self._process = process = await self.runtime.launch(self.prepared, port=port, name=self.name)
            client = ReplicaClient("127.0.0.1", port)
            code = await self._await_ready(process, client)
            if code is None:  # ready
                self.client, self.ready, been_ready = client, True, True
                self._settled.set()
                self.on_change(self, ReplicaEvent.READY)
                ready_at = time.monotonic()
                code = await self._watch(process, client)
                self.last_exit_code = code
                self.ready = False
                client.close()
                if self._stopping.is_set():
                    break
                self.restarts += 1
                self.failure = None
                self.on_change(self, ReplicaEvent.DOWN)
                if time.monotonic() - ready_at > 60:
                    backoff = self.backoff_initial
            else:
                client.close()
                if self._stopping.is_set():
                    break
                if code == EXIT_BIND_FAILED:
                    continue  # another process took the port between our probe and its bind
                if not been_ready:
                    tail = process.output_tail(8).strip()
                    why = f"did not answer /ready within {self.ready_timeout:g}s" if code == -1 else f"exit code {code}"
                    self.failure = f"replica of build {self.build_id} did not start ({why})" + (
                        f": {tail}" if tail else ""
                    )
                    self._settled.set()
                    self.on_change(self, ReplicaEvent.FAILED)
                    return
                self.restarts += 1
                self.last_exit_code = code
                self.on_change(self, ReplicaEvent.DOWN)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, self.backoff_max)
        self.on_change(self, ReplicaEvent.STOPPED)

    async def _watch(self, process: ReplicaProcess, client: ReplicaClient) -> int:
        """Wait for the process to end; kill it if, while no request is in flight, it stops
        answering /ready twice in a row (a predict that never returns, for a request that timed out)."""
        exited = asyncio.ensure_future(process.wait())
        misses = 0
        while True:
            await asyncio.wait({exited}, timeout=self.liveness_interval)
            if exited.done() or self._stopping.is_set():
                return await exited
            if self.inflight:
                misses = 0
                continue
            started = self.started
            try:
                async with asyncio.timeout(self.liveness_timeout):
                    status, _ = await client.get_json("/ready")
                alive = status == 200
            except (TimeoutError, ReplicaUnreachable):
                alive = False
            if alive or self.started != started:  # answered, or busy with new requests meanwhile
                misses = 0
                continue
            misses += 1
            if misses >= 2:
                log.warning("replica %s stopped answering while idle; restarting it", self.name)
                await process.stop(1.0)
                return await exited

    async def _await_ready(self, process: ReplicaProcess, client: ReplicaClient) -> int | None:
        """None once /ready answers 200; the exit code if the process ended first (-1: timed out)."""
        exited = asyncio.ensure_future(process.wait())
        deadline = time.monotonic() + self.ready_timeout
        try:
            while time.monotonic() < deadline and not self._stopping.is_set():
                if exited.done():
                    return exited.result()
                try:
                    status, _ = await client.get_json("/ready")
                    if status == 200:
                        return None
                except ReplicaUnreachable:
                    pass
                await asyncio.wait({exited}, timeout=0.05)
            if not exited.done():
                await process.stop(5)
            await exited
            return -1 if not self._stopping.is_set() else exited.result()
        finally:
            if not exited.done():
                exited.cancel()
