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

from data_plane_agent.builds import BuildManager
from data_plane_agent.commands.features import features_apply, features_materialize
from data_plane_agent.serving import ServingEngine
from shared import __version__
from shared import builds as build_contract
from shared import features as feature_contract
from shared import serving as serving_contract
from shared.errors import MallardError

CAPABILITIES = ["command.describe", "command.ping", "data-plane.rest", "build.local", "serving.local"]

# The daemon attaches its BuildManager per agent home (CommandContext carries the home).
_BUILD_MANAGERS: dict[Path, BuildManager] = {}


def attach_build_manager(home: Path, manager: BuildManager | None) -> None:
    if manager is None:
        _BUILD_MANAGERS.pop(home, None)
    else:
        _BUILD_MANAGERS[home] = manager


# ... and its ServingEngine (deployment.apply / deployment.delete).
_SERVING_ENGINES: dict[Path, ServingEngine] = {}


def attach_serving_engine(home: Path, engine: ServingEngine | None) -> None:
    if engine is None:
        _SERVING_ENGINES.pop(home, None)
    else:
        _SERVING_ENGINES[home] = engine


def enable_capability(name: str) -> None:
    """Advertise a capability found at start-up (e.g. build.docker when an engine answers)."""
    if name not in CAPABILITIES:
        CAPABILITIES.append(name)


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


def _builds(ctx: CommandContext) -> BuildManager:
    manager = _BUILD_MANAGERS.get(ctx.home)
    if manager is None:
        raise CommandFailed("this agent runs no builds (its build manager is not started)")
    return manager


async def build_run(ctx: CommandContext, spec: dict[str, Any]) -> dict[str, Any]:
    """Queue the build and answer at once; progress follows as build.* events."""
    try:
        return await asyncio.to_thread(_builds(ctx).submit, spec)
    except MallardError as exc:
        raise CommandFailed(exc.message) from exc


async def build_cancel(ctx: CommandContext, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        return await asyncio.to_thread(_builds(ctx).cancel, str(spec.get("build_id", "")))
    except MallardError as exc:
        raise CommandFailed(exc.message) from exc


def _serving(ctx: CommandContext) -> ServingEngine:
    engine = _SERVING_ENGINES.get(ctx.home)
    if engine is None:
        raise CommandFailed("this agent serves no models (its serving engine is not started)")
    return engine


async def deployment_apply(ctx: CommandContext, spec: dict[str, Any]) -> dict[str, Any]:
    """Persist the desired state and answer at once; reconciling follows as deployment.status events."""
    try:
        return await _serving(ctx).apply(spec)  # type: ignore[arg-type]
    except MallardError as exc:
        raise CommandFailed(exc.message) from exc


async def deployment_delete(ctx: CommandContext, spec: dict[str, Any]) -> dict[str, Any]:
    deployment_id = spec.get("deployment_id")
    if not isinstance(deployment_id, str) or not deployment_id:
        raise CommandFailed("deployment_id is required")
    try:
        return await _serving(ctx).delete(deployment_id)
    except MallardError as exc:
        raise CommandFailed(exc.message) from exc


HANDLERS: dict[str, Callable[[CommandContext, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "describe": describe,
    "ping": ping,
    build_contract.RUN_COMMAND: build_run,
    build_contract.CANCEL_COMMAND: build_cancel,
    serving_contract.APPLY_COMMAND: deployment_apply,
    serving_contract.DELETE_COMMAND: deployment_delete,
    feature_contract.APPLY_COMMAND: features_apply,
    feature_contract.MATERIALIZE_COMMAND: features_materialize,
}


async def run_command(ctx: CommandContext, type_: str, spec: dict[str, Any]) -> dict[str, Any]:
    handler = HANDLERS.get(type_)
    if handler is None:
        raise CommandFailed(f"this agent (version {__version__}) does not know command type {type_!r}")
    return await handler(ctx, spec)
