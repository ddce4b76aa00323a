"""The serving engine: deployments of builds as replicas, and predictions routed to them.

Public surface (the gateway, the lake and the jobs code against it):

- `start()` restores the persisted desired state (`<home>/serving.db`) and starts replicas;
  serving never needs the control plane.
- `apply(spec)` / `delete(id)` persist the desired state and reconcile in the background.
- `predict(model, table, request_id=...)` picks a live variation by weight, mirrors the request
  to shadow variations in the background, and calls `recorder` once per live and shadow answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_plane_agent.lake.records import PredictionRecord
from mallard.schema import ModelSchema
from shared.errors import NotFound
from shared.serving import ApplySpec


@dataclass(frozen=True)
class PredictionOutcome:
    """What the live variation answered for one request."""

    outputs: pa.Table
    deployment_id: str
    variation: str
    build_id: str
    latency_ms: float


class ServingEngine:
    """Runs the deployments of one agent home. `recorder` receives every prediction (live and shadow)."""

    recorder: Callable[[PredictionRecord], None] | None

    def __init__(self, *, home: Path) -> None:
        self.home = home
        self.recorder = None

    async def start(self) -> None:
        """Restore persisted desired state (home/serving.db) and start its replicas."""
        raise NotImplementedError

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop taking requests, let in-flight ones finish (up to `grace_seconds`), stop replicas."""
        raise NotImplementedError

    async def apply(self, spec: ApplySpec) -> dict[str, Any]:
        """Persist the desired state and reconcile to it in the background (idempotent; older revisions ignored)."""
        raise NotImplementedError

    async def delete(self, deployment_id: str) -> dict[str, Any]:
        """Stop a deployment (drain, then stop its replicas) and forget its desired state."""
        raise NotImplementedError

    def schema(self, model: str) -> ModelSchema:
        """The schema of the model a deployment serves; NotFound when none serves `model`."""
        raise NotFound(f"no deployment serves model {model!r}", field="model")

    def logging_enabled(self, model: str) -> bool:
        """Whether predictions of `model` are logged to the inference lake (True when unknown)."""
        return True

    def deployments(self) -> list[dict[str, Any]]:
        """The agent-local status of every deployment (for GET /v1/deployments)."""
        return []

    async def predict(
        self, model: str, table: pa.Table, *, request_id: str, timeout_s: float | None = None
    ) -> PredictionOutcome:
        """Predict with a live variation of `model`'s realtime deployment.

        Raises NotFound (no such model deployed), Unavailable (no ready replica),
        PredictionTimeout and ModelFailed (the model's predict raised).
        """
        raise NotFound(f"no deployment serves model {model!r}", field="model")
