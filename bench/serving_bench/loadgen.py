"""The load generator: its own process, pinned by the benchmark to the core the servers do not use.

`python -m bench.serving_bench.loadgen SPEC_JSON` sends the same request over `concurrency`
keep-alive connections (HTTP/1.1, raw asyncio streams: no client library in the way) or as
`concurrency` concurrent calls on one gRPC channel (bytes in, bytes out: the benchmark serializes
the request message once), each connection / task sending its next request as soon as the answer
arrives (closed loop). Requests completed during `warmup` seconds are dropped; the figures cover
the `duration` seconds after it. Prints one JSON object on stdout:

    {"requests", "completed", "errors", "seconds", "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms",
     "client_cpu", "statuses", "error_sample"}

`client_cpu` is this process's CPU time over wall time: near 1.0 means the load generator, not
the server, was the limit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    """What the connections recorded during the measured window."""

    start: float
    end: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    error_sample: str = ""
    completed: int = 0  # every answer, warm-up included (the server's CPU is read over all of them)

    def note(self, began: float, finished: float, status: str, ok: bool, detail: str = "") -> None:
        self.completed += 1
        if began < self.start or finished > self.end:
            return
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if ok:
            self.latencies.append(finished - began)
        else:
            self.errors += 1
            self.error_sample = self.error_sample or detail[:300]


def http_request(spec: dict[str, Any], body: bytes) -> bytes:
    headers = {"Host": f"{spec['host']}:{spec['port']}", "Content-Length": str(len(body))}
    headers.update(spec.get("headers", {}))
    lines = [f"POST {spec['path']} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, rest = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked = 0, False
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return status, b"".join(parts)


async def http_worker(spec: dict[str, Any], request: bytes, tally: Tally, stop: float) -> None:
    reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
    try:
        while time.perf_counter() < stop:
            began = time.perf_counter()
            writer.write(request)
            try:
                status, payload = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                tally.note(began, time.perf_counter(), "closed", False, repr(exc))
                writer.close()
                reader, writer = await asyncio.open_connection(spec["host"], spec["port"])
                continue
            ok = status == spec.get("expect_status", 200)
            tally.note(began, time.perf_counter(), str(status), ok, payload.decode(errors="replace"))
    finally:
        writer.close()


async def grpc_worker(call: Any, message: bytes, metadata: Any, tally: Tally, stop: float) -> None:
    import grpc

    while time.perf_counter() < stop:
        began = time.perf_counter()
        try:
            await call(message, metadata=metadata, timeout=30)
        except grpc.aio.AioRpcError as exc:
            tally.note(began, time.perf_counter(), exc.code().name, False, exc.details() or "")
            continue
        tally.note(began, time.perf_counter(), "OK", True)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    body = base64.b64decode(spec["body_b64"])
    now = time.perf_counter()
    tally = Tally(start=now + spec["warmup"], end=now + spec["warmup"] + spec["duration"])
    concurrency = int(spec["concurrency"])
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    if spec["kind"] == "http":
        request = http_request(spec, body)
        await asyncio.gather(*(http_worker(spec, request, tally, tally.end) for _ in range(concurrency)))
    else:
        import grpc

        async with grpc.aio.insecure_channel(f"{spec['host']}:{spec['port']}") as channel:
            call = channel.unary_unary(spec["method"], request_serializer=None, response_deserializer=None)
            metadata = tuple((k.lower(), v) for k, v in spec.get("headers", {}).items())
            await asyncio.gather(*(grpc_worker(call, body, metadata, tally, tally.end) for _ in range(concurrency)))
    cpu = (time.process_time() - cpu_before) / max(time.perf_counter() - wall_before, 1e-9)
    return summarize(tally, spec["duration"], cpu)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def summarize(tally: Tally, seconds: float, client_cpu: float) -> dict[str, Any]:
    latencies = sorted(tally.latencies)
    return {
        "requests": len(latencies),
        "completed": tally.completed,
        "errors": tally.errors,
        "seconds": seconds,
        "rps": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else 0.0,
        "client_cpu": round(client_cpu, 3),
        "statuses": tally.statuses,
        "error_sample": tally.error_sample,
    }


def main() -> int:
    spec = json.loads(sys.argv[1])
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {int(spec["cpu"])})
    print(json.dumps(asyncio.run(run(spec))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
