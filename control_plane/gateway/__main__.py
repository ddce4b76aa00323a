"""`python -m control_plane.gateway`: run the gRPC gateway as its own process."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal

from control_plane.gateway.server import GatewayServer, prepare
from control_plane.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(description="Mallard control-plane gRPC gateway")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int, help="agent link port (mTLS)")
    parser.add_argument("--enroll-port", type=int, help="enrollment port (server TLS)")
    args = parser.parse_args()
    settings = get_settings()
    if args.host:
        settings.gateway_host = args.host
    if args.port is not None:
        settings.gateway_port = args.port
    if args.enroll_port is not None:
        settings.gateway_enroll_port = args.enroll_port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    prepare(settings)

    async def run() -> None:
        server = GatewayServer(settings)
        # Thousands of long-lived streams keep hundreds of thousands of objects alive; with the
        # default thresholds full collections pause every stream for 100+ ms (bench/agent_fleet.py).
        # Objects from startup are frozen out of collection and collections run less often.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.shutdown)
        await server.run()

    asyncio.run(run())


if __name__ == "__main__":
    main()
