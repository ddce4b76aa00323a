"""Batch and streaming jobs: a deployment's build run over data instead of behind an endpoint.

The serving engine starts the deployment's replicas, then calls `run_job` with a `predict`
callable bound to them. Batch jobs return when every input row is scored, or early when `stop`
is set (they resume from their checkpoint next time). Streaming jobs run until `stop` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pyarrow as pa

from data_plane_agent.jobs.batch import run_batch
from data_plane_agent.storage import ObjectStore
from shared.errors import InvalidInput
from shared.serving import ApplySpec, DeploymentKind, StatusPayload


async def run_job(
    *,
    spec: ApplySpec,
    predict: Callable[[pa.Table], Awaitable[pa.Table]],
    report: Callable[[StatusPayload], None],
    home: Path,
    store: ObjectStore,
    stop: asyncio.Event,
) -> None:
    """Run the batch or streaming job `spec` describes, reporting progress through `report`."""
    kind = spec.get("kind")
    if kind == DeploymentKind.BATCH:
        await run_batch(spec=spec, predict=predict, report=report, home=home, store=store, stop=stop)
    elif kind == DeploymentKind.STREAMING:
        from data_plane_agent.jobs.streaming import run_streaming

        await run_streaming(spec=spec, predict=predict, report=report, home=home, store=store, stop=stop)
    else:
        raise InvalidInput(f"run_job runs batch and streaming deployments, not {kind!r}", field="kind")


__all__ = ["run_job"]
