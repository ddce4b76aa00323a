"""Handlers of `features.apply` / `features.materialize`: they hand the spec to the agent's
FeatureService and answer with metadata only (names, versions, fingerprints, job ids)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import MallardError

if TYPE_CHECKING:
    from data_plane_agent.commands.handlers import CommandContext
    from data_plane_agent.features.service import FeatureService

# The daemon attaches its FeatureService per agent home (CommandContext carries the home).
_SERVICES: dict[Path, FeatureService] = {}


def attach_feature_service(home: Path, service: FeatureService | None) -> None:
    if service is None:
        _SERVICES.pop(home, None)
    else:
        _SERVICES[home] = service


def _service(ctx: CommandContext) -> FeatureService:
    from data_plane_agent.commands.handlers import CommandFailed

    service = _SERVICES.get(ctx.home)
    if service is None:
        raise CommandFailed("this agent runs no feature store (its feature service is not started)")
    return service


async def features_apply(ctx: CommandContext, spec: dict[str, Any]) -> dict[str, Any]:
    """Validate the definitions against the data here and store them; errors go back in the ack."""
    from data_plane_agent.commands.handlers import CommandFailed

    try:
        return await asyncio.to_thread(_service(ctx).apply, spec)
    except MallardError as exc:
        raise CommandFailed(exc.message) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandFailed(f"malformed features.apply spec: {exc}") from exc


async def features_materialize(ctx: CommandContext, spec: dict[str, Any]) -> dict[str, Any]:
    """Queue the job and answer at once; progress follows as features.materialization events."""
    from data_plane_agent.commands.handlers import CommandFailed

    try:
        return await asyncio.to_thread(_service(ctx).materialize, spec)
    except MallardError as exc:
        raise CommandFailed(exc.message) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandFailed(f"malformed features.materialize spec: {exc}") from exc
