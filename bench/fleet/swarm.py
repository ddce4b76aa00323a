"""Simulated agents: many mTLS streams in one grpc.aio event loop, driven by JSON lines on stdin.

`python -m bench.fleet.swarm --target HOST:PORT --ca CA --fleet FILE --first I --count N --mode M`
opens one channel (one TCP + TLS connection) and one stream per agent. Requests and replies are
one JSON object per line; stdout carries nothing else. Two wire modes share everything else:

- `mallard`: the real AgentLink protocol (hello -> welcome, heartbeats, command acks);
- `echo`: the peer, a bare echo stream (see echo_server.py) carrying the same kinds of traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from bench.fleet.processes import raise_fd_limit
from bench.fleet.provision import SimulatedAgent, read_fleet_file
from bench.fleet.wire import MARKER_PREFIX, Wire, wire_for

CONNECT_TIMEOUT = 30.0
HEARTBEAT_SLOT = 0.1  # heartbeats are spread over the interval in slots of this many seconds


class LinkStream:
    """One simulated agent: a channel, its stream, a writer fed by a queue, and a reader."""

    def __init__(self, swarm: Swarm, identity: SimulatedAgent) -> None:
        self.swarm = swarm
        self.identity = identity
        self.outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self.channel: grpc.aio.Channel | None = None
        self.call: Any = None
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.swarm.ca_pem,
            private_key=self.identity.key_pem.encode(),
            certificate_chain=self.identity.cert_pem.encode(),
        )
        self.channel = grpc.aio.secure_channel(self.swarm.target, creds, options=CHANNEL_OPTIONS)
        # No (de)serializers: the wire module builds and parses the bytes, so both modes cost the same here.
        self.call = self.channel.stream_stream(self.swarm.wire.method)()
        await self.call.write(self.swarm.wire.hello())
        first = await asyncio.wait_for(self.call.read(), CONNECT_TIMEOUT)
        if first is grpc.aio.EOF or not self.swarm.wire.is_welcome(first):
            await self.call.code()
            raise ConnectionError("the server did not answer the hello")
        self.tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._read())]

    async def _write(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, grpc.aio.UsageError):  # the reader counts the loss
            while True:
                await self.call.write(await self.outgoing.get())

    async def _read(self) -> None:
        wire, swarm = self.swarm.wire, self.swarm
        while True:
            try:
                message = await self.call.read()
            except grpc.aio.AioRpcError:
                message = grpc.aio.EOF
            if message is grpc.aio.EOF:
                swarm.lost += 1
                return
            kind, ident = wire.classify(message)
            if kind == "command":
                swarm.command_received[ident] = time.time()
                self.outgoing.put_nowait(wire.command_ack(ident))
            elif kind == "marker":
                swarm.marker_arrived()
            elif kind == "receipt":
                swarm.receipt_received[ident] = time.time()
            elif kind == "pong":
                swarm.pong_arrived(ident)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.call is not None:
            self.call.cancel()
        if self.channel is not None:
            await self.channel.close(grace=None)


CHANNEL_OPTIONS: list[tuple[str, int | str]] = [
    # The same keepalive settings as the real agent (data_plane_agent/link/enroll.py).
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.enable_retries", 0),
    # Each simulated agent is its own connection, never a shared subchannel.
    ("grpc.use_local_subchannel_pool", 1),
]


class Swarm:
    """All simulated agents of this process and what they have measured."""

    def __init__(self, target: str, ca_pem: bytes, agents: list[SimulatedAgent], wire: Wire, heartbeat_ms: int) -> None:
        self.target = target
        self.ca_pem = ca_pem
        self.wire = wire
        self.heartbeat_ms = heartbeat_ms
        self.streams = [LinkStream(self, a) for a in agents]
        self.live: list[LinkStream] = []
        self.lost = 0
        self.command_received: dict[str, float] = {}
        self.receipt_received: dict[str, float] = {}
        self._markers_seen = 0
        self._markers_wanted = 0
        self._markers_done = asyncio.Event()
        self._pongs: dict[str, float] = {}
        self._rtts: list[float] = []
        self._heartbeats: asyncio.Task[None] | None = None

    async def connect(self, concurrency: int) -> dict[str, Any]:
        gate = asyncio.Semaphore(concurrency)
        errors: dict[str, int] = {}

        async def one(stream: LinkStream) -> None:
            async with gate:
                try:
                    await stream.open()
                    self.live.append(stream)
                except Exception as exc:  # counted and reported, never fatal to the other streams
                    name = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
                    errors[name] = errors.get(name, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one(s) for s in self.streams))
        seconds = time.perf_counter() - started
        self._heartbeats = asyncio.create_task(self._heartbeat_loop())
        return {
            "connected": len(self.live),
            "agent_ids": [s.identity.agent_id for s in self.live],
            "errors": errors,
            "seconds": seconds,
        }

    async def _heartbeat_loop(self) -> None:
        """Each agent heartbeats once per interval; agents are spread evenly over the interval."""
        slots = max(1, round(self.heartbeat_ms / 1000 / HEARTBEAT_SLOT))
        groups: list[list[LinkStream]] = [self.live[i::slots] for i in range(slots)]
        tick = 0
        next_at = time.monotonic()
        while True:
            for stream in groups[tick % slots]:
                stream.outgoing.put_nowait(self.wire.heartbeat())
            tick += 1
            next_at += HEARTBEAT_SLOT
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def marker_arrived(self) -> None:
        self._markers_seen += 1
        if self._markers_seen >= self._markers_wanted:
            self._markers_done.set()

    async def burst(self, per_agent: int, timeout: float) -> dict[str, Any]:
        """Queue `per_agent` heartbeats then one marker on every stream; time until every marker is answered.

        Streams are ordered, so a stream's marker is answered only after the server consumed
        all the heartbeats queued before it.
        """
        self._markers_seen, self._markers_wanted = 0, len(self.live)
        self._markers_done.clear()
        blob = self.wire.heartbeat()
        started = time.perf_counter()
        for index, stream in enumerate(self.live):
            for _ in range(per_agent):
                stream.outgoing.put_nowait(blob)
            stream.outgoing.put_nowait(self.wire.marker(f"{MARKER_PREFIX}{index}-{time.monotonic_ns()}"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._markers_done.wait(), timeout)
        return {
            "heartbeats": per_agent * len(self.live),
            "markers": self._markers_seen,
            "streams": len(self.live),
            "seconds": time.perf_counter() - started,
        }

    def pong_arrived(self, ident: str) -> None:
        sent = self._pongs.pop(ident, None)
        if sent is not None:
            self._rtts.append((time.perf_counter() - sent) * 1000)

    async def ping(self, count: int, rate: float, timeout: float) -> dict[str, Any]:
        """Ping/pong `count` times on random streams at `rate` per second; RTTs in ms."""
        self._rtts = []
        started = time.monotonic()
        for k in range(count):
            await asyncio.sleep(max(0.0, started + k / rate - time.monotonic()))
            ident = f"p{k}"
            self._pongs[ident] = time.perf_counter()
            random.choice(self.live).outgoing.put_nowait(self.wire.ping(ident))
        deadline = time.monotonic() + timeout
        while self._pongs and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        lost, self._pongs = len(self._pongs), {}
        return {"rtts_ms": self._rtts, "unanswered": lost}

    async def take_command_times(self) -> dict[str, Any]:
        received, receipts = self.command_received, self.receipt_received
        self.command_received, self.receipt_received = {}, {}
        return {"received": received, "receipts": receipts}

    async def status(self) -> dict[str, Any]:
        return {"live": len(self.live) - self.lost, "lost": self.lost}

    async def close(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()
        await asyncio.gather(*(s.close() for s in self.streams), return_exceptions=True)


async def serve(swarm: Swarm) -> None:
    loop = asyncio.get_running_loop()
    handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
        "connect": lambda r: swarm.connect(int(r.get("concurrency", 32))),
        "burst": lambda r: swarm.burst(int(r["per_agent"]), float(r.get("timeout", 180))),
        "ping": lambda r: swarm.ping(int(r["count"]), float(r["rate"]), float(r.get("timeout", 30))),
        "commands": lambda r: swarm.take_command_times(),
        "status": lambda r: swarm.status(),
    }
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line or json.loads(line)["op"] == "quit":
                return
            request = json.loads(line)
            reply = await handlers[request["op"]](request)
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    finally:
        await swarm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--fleet", type=Path, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mode", choices=["mallard", "echo"], required=True)
    parser.add_argument("--heartbeat-ms", type=int, default=10_000)
    args = parser.parse_args()
    raise_fd_limit()
    agents = read_fleet_file(args.fleet)[args.first : args.first + args.count]
    swarm = Swarm(args.target, args.ca.read_bytes(), agents, wire_for(args.mode), args.heartbeat_ms)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(swarm))


if __name__ == "__main__":
    main()
