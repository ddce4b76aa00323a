"""Command handlers. Each returns a JSON-able dict of metadata (never customer data)."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import __version__

CAPABILITIES = ["command.describe", "command.ping", "data-plane.rest"]


class CommandFailed(Exception):
    """A handler could not do what was asked; the message goes back in the ack."""


@dataclass(frozen=True)
class CommandContext:
    agent_id: str
    tenant_id: str
    home: Path
    data_plane_url: str
    started_monotonic: float


def _memory_total_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


async def describe(ctx: CommandContext, spec: dict[str, Any]) -> dict[str, Any]:
    disk = shutil.disk_usage(ctx.home)
    return {
        "agent_id": ctx.agent_id,
        "tenant_id": ctx.tenant_id,
        "version": __version__,
        "capabilities": CAPABILITIES,
        "data_plane_url": ctx.data_plane_url,
        "uptime_seconds": round(time.monotonic() - ctx.started_monotonic, 3),
        "host": {
            "hostname": socket.gethostname(),
            "os": platform.system(),
            "os_release": platform.release(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "memory_total_bytes": _memory_total_bytes(),
            "disk_free_bytes": disk.free,
        },
    }


async def ping(ctx: CommandContext, spec: dict[str, Any]) -> dict[str, Any]:
    delay = float(spec.get("delay_seconds", 0) or 0)
    if delay < 0 or delay > 60:
        raise CommandFailed("delay_seconds must be between 0 and 60")
    if delay:
        await asyncio.sleep(delay)
    return {"pong": True, "agent_time_unix_ms": int(time.time() * 1000)}


HANDLERS: dict[str, Callable[[CommandContext, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "describe": describe,
    "ping": ping,
}


async def run_command(ctx: CommandContext, type_: str, spec: dict[str, Any]) -> dict[str, Any]:
    handler = HANDLERS.get(type_)
    if handler is None:
        raise CommandFailed(f"this agent (version {__version__}) does not know command type {type_!r}")
    return await handler(ctx, spec)
