"""The peer: a bare grpc.aio bidi-stream echo server with the gateway's mTLS and server options.

It answers every message except heartbeats (tag `h`), which it only consumes, so the same
simulated-agent traffic measures the floor grpc.aio itself sets on this machine: round trip
(ping/pong), memory per stream and messages consumed per second.

`python -m bench.fleet.echo_server --port P --home CP_HOME` (uses CP_HOME/pki like the gateway).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from bench.fleet.processes import raise_fd_limit
from bench.fleet.wire import ECHO_METHOD
from control_plane.gateway.server import server_options
from control_plane.settings import Settings


async def echo(requests: AsyncIterator[bytes], _context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for message in requests:
        if message[:1] != b"h":
            yield message


async def serve(port: int, pki: Path) -> None:
    settings = Settings()
    server = grpc.aio.server(options=server_options(settings), maximum_concurrent_rpcs=None)
    service, method = ECHO_METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service, {method: grpc.stream_stream_rpc_method_handler(echo)})]
    )
    creds = grpc.ssl_server_credentials(
        [((pki / "gateway.key").read_bytes(), (pki / "gateway.crt").read_bytes())],
        root_certificates=(pki / "ca.crt").read_bytes(),
        require_client_auth=True,
    )
    if not server.add_secure_port(f"127.0.0.1:{port}", creds):
        raise RuntimeError(f"could not bind 127.0.0.1:{port}")
    await server.start()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await server.stop(grace=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    raise_fd_limit()
    asyncio.run(serve(args.port, args.home / "pki"))


if __name__ == "__main__":
    main()
