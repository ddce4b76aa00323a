"""The serving engine: deployments of builds as replicas, and predictions routed to them.

- `start()` restores the persisted desired state (`<home>/serving.db`) and starts replicas;
  serving never needs the control plane.
- `apply(spec)` / `delete(id)` persist the desired state and reconcile in the background
  (see `deployment.py`: rolling updates, draining), reporting `deployment.status` events.
- `predict(model, table, request_id=...)` picks a live variation by weight, mirrors the request
  to shadow variations in the background, and calls `recorder` once per live and shadow answer.
  Requests to a variation whose replicas are busy are sent together when one is free
  (`batching.py`), each still answered, timed out and recorded on its own.
  Batch and streaming deployments run their job (`data_plane_agent.jobs.run_job`) against
  their replicas (`job_runner.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_plane_agent.lake.records import PredictionRecord
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.serving.deployment import Deployment
from data_plane_agent.serving.job_runner import JobRunner
from data_plane_agent.serving.recording import record_prediction
from data_plane_agent.serving.routing import Route
from data_plane_agent.serving.runtimes import ServingRuntime
from data_plane_agent.serving.state import DesiredState
from data_plane_agent.storage import ObjectStore
from mallard.schema import ModelSchema
from shared.errors import InvalidInput, MallardError, NotFound, Unavailable
from shared.serving import STATUS_EVENT, ApplySpec, DeploymentKind, DeploymentState, StatusPayload, check_apply_spec

log = logging.getLogger("mallard.agent.serving")
DEFAULT_TIMEOUT_SECONDS = 30.0
_FIELD = re.compile(r"^(deployment_id|kind|runtime|variations)(\[\d+\](\.\w+)?)?$")


@dataclass(frozen=True)
class PredictionOutcome:
    """What the live variation answered for one request."""

    outputs: pa.Table
    deployment_id: str
    variation: str
    build_id: str
    latency_ms: float


class ServingEngine:
    """Runs the deployments of one agent home. `recorder` receives every prediction (live and shadow).

    `runtimes` maps a runtime name ("local", "docker") to where replicas run (see `wiring.py`);
    status events go to `outbox` (then `notify()` wakes the link).
    """

    recorder: Callable[[PredictionRecord], None] | None
    enricher: Callable[[ModelSchema, pa.Table], pa.Table] | None
    """Adds feature-store columns for a schema that declares `features` (the daemon sets it)."""

    def __init__(
        self,
        *,
        home: Path,
        runtimes: dict[str, ServingRuntime],
        store: ObjectStore | None = None,
        outbox: Outbox | None = None,
        notify: Callable[[], None] | None = None,
        default_timeout_s: float = DEFAULT_TIMEOUT_SECONDS,
        replica_options: dict[str, float] | None = None,
    ) -> None:
        self.home = home
        self.runtimes = runtimes
        self.store = store
        self.outbox = outbox
        self.notify = notify
        self.default_timeout_s = default_timeout_s
        self.replica_options = replica_options
        self.recorder = None
        self.enricher = None
        self._state: DesiredState | None = None
        self._deployments: dict[str, Deployment] = {}
        self._by_model: dict[str, Deployment] = {}  # realtime deployments, the predict path's index
        self._reported: dict[str, str] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._jobs = JobRunner(self)
        self._closing = False

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore persisted desired state (home/serving.db) and start its replicas."""
        self._state = DesiredState(self.home / "serving.db")
        for runtime in self.runtimes.values():
            await runtime.cleanup()
        for stored in self._state.all():
            if stored.final_state is None:
                self._launch(stored.spec)

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop taking requests, let in-flight ones finish (up to `grace_seconds`), stop replicas."""
        if self._closing:
            return
        self._closing = True
        await self._jobs.stop_all(grace_seconds / 2)
        await asyncio.gather(*(d.stop(drain_seconds=grace_seconds / 2) for d in self._deployments.values()))
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._state is not None:
            self._state.close()

    # ---- desired state -----------------------------------------------------------------------

    async def apply(self, spec: ApplySpec) -> dict[str, Any]:
        """Persist the desired state and reconcile to it in the background (idempotent; older revisions ignored)."""
        problems = check_apply_spec(dict(spec))
        if problems:
            raise InvalidInput("; ".join(problems), field=_field_of(problems[0]))
        if self._state is None or self._closing:
            raise Unavailable("the serving engine is not running")
        spec = _normalised(spec)
        deployment_id, revision = spec["deployment_id"], spec["revision"]
        stored = self._state.get(deployment_id)
        if stored is not None and stored.revision > revision:
            reason = f"revision {stored.revision} is already applied"
            return {"deployment_id": deployment_id, "revision": stored.revision, "applied": False, "reason": reason}
        current = self._deployments.get(deployment_id)
        if stored is not None and stored.revision == revision:
            if stored.final_state is not None:  # redelivered after it finished or was deleted
                final = stored.final_state
                return {"deployment_id": deployment_id, "revision": revision, "applied": False, "state": final}
            if current is not None:
                return {"deployment_id": deployment_id, "revision": revision, "applied": True, "state": current.state}
        self._state.put(spec, now_ms=_now_ms())
        if current is not None and current.kind == spec["kind"] == DeploymentKind.REALTIME:
            current.spec = spec
            current.final_state = None
            self._index()
            current.wake.set()
        else:
            if current is not None:  # a job's spec changed: restart it from the new spec
                await self._stop(current)
            self._launch(spec)
        return {"deployment_id": deployment_id, "revision": revision, "applied": True, "state": "PENDING"}

    async def delete(self, deployment_id: str) -> dict[str, Any]:
        """Stop a deployment (drain, then stop its replicas) and forget its desired state."""
        if self._state is None:
            raise Unavailable("the serving engine is not running")
        self._state.stop(deployment_id, now_ms=_now_ms())
        deployment = self._deployments.get(deployment_id)
        if deployment is None:
            return {"deployment_id": deployment_id, "deleted": False}
        deployment.silent = True
        await self._stop(deployment)
        deployment.silent = False
        deployment.final_state = DeploymentState.STOPPED
        deployment.message = ""
        deployment.refresh_state()
        return {"deployment_id": deployment_id, "deleted": True}

    def _launch(self, spec: ApplySpec) -> None:
        deployment = Deployment(spec, runtimes=self.runtimes, report=self._report, replica_options=self.replica_options)
        self._deployments[deployment.id] = deployment
        self._index()
        deployment.task = asyncio.create_task(deployment.run(), name=f"deployment {deployment.id}")
        deployment.wake.set()
        if deployment.kind != DeploymentKind.REALTIME:
            self._jobs.start(deployment)

    async def _stop(self, deployment: Deployment) -> None:
        self._deployments.pop(deployment.id, None)
        self._index()
        await self._jobs.stop(deployment, grace_seconds=10)
        await deployment.stop()

    def _index(self) -> None:
        self._by_model = {d.model: d for d in self._deployments.values() if d.kind == DeploymentKind.REALTIME}

    def _report(self, deployment: Deployment, extra: StatusPayload | None = None) -> None:
        payload = deployment.status()
        if extra:
            payload.update(extra)
        key = json.dumps(payload, sort_keys=True)
        if self._reported.get(deployment.id) == key:
            return
        self._reported[deployment.id] = key
        payload["at"] = datetime.now(UTC).isoformat()
        if self.outbox is not None:
            self.outbox.append(STATUS_EVENT, dict(payload))
            if self.notify is not None:
                self.notify()

    # ---- views ------------------------------------------------------------------------------

    def schema(self, model: str) -> ModelSchema:
        """The schema of the model a realtime deployment serves; NotFound when none serves `model`."""
        deployment = self._serving(model)
        if deployment.schema is None:
            raise Unavailable(f"model {model!r} is being deployed; its schema is known once its artifact is fetched")
        return deployment.schema

    def logging_enabled(self, model: str) -> bool:
        """Whether predictions of `model` are logged to the inference lake (True for an unknown model)."""
        deployment = self._by_model.get(model)
        return True if deployment is None else bool(deployment.spec.get("logging", True))

    def deployments(self) -> list[dict[str, Any]]:
        """The agent-local status of every deployment (for GET /v1/deployments)."""
        return [d.view() for d in self._deployments.values()]

    def _serving(self, model: str) -> Deployment:
        deployment = self._by_model.get(model)
        if deployment is None:
            raise NotFound(f"no real-time deployment serves model {model!r} on this agent", field="model")
        return deployment

    # ---- predictions --------------------------------------------------------------------------

    async def predict(
        self, model: str, table: pa.Table, *, request_id: str, timeout_s: float | None = None
    ) -> PredictionOutcome:
        """Predict with a live variation of `model`'s realtime deployment.

        Raises NotFound (no such model deployed), Unavailable (no ready replica),
        PredictionTimeout and ModelFailed (the model's predict raised).
        """
        deployment = self._serving(model)
        arrived_ms, started = _now_ms(), time.perf_counter()
        route = deployment.pick_live()
        if route is None or self._closing:
            error = Unavailable(f"model {model!r} has no ready replica (deployment is {deployment.state})")
            self._record(deployment, None, "", request_id, arrived_ms, 0.0, table, None, error)
            raise error
        timeout = timeout_s if timeout_s is not None else self._timeout(deployment)
        if deployment.schema is not None and deployment.schema.features:
            table = await self._enrich(deployment.schema, table)
        for shadow in deployment.shadows:
            task = asyncio.create_task(self._shadow(deployment, shadow, table, request_id, arrived_ms, timeout))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        try:
            outputs, build_id = await deployment.batcher(route).predict(table, timeout)
        except MallardError as exc:
            latency = (time.perf_counter() - started) * 1000
            self._record(deployment, route, "", request_id, arrived_ms, latency, table, None, exc)
            raise
        latency = (time.perf_counter() - started) * 1000
        self._record(deployment, route, build_id, request_id, arrived_ms, latency, table, outputs, None)
        return PredictionOutcome(outputs, deployment.id, route.name, build_id, latency)

    async def _enrich(self, schema: ModelSchema, table: pa.Table) -> pa.Table:
        if self.enricher is None:
            raise Unavailable("this model reads feature-store inputs, but this agent runs no feature store")
        return await asyncio.to_thread(self.enricher, schema, table)

    async def _shadow(
        self,
        deployment: Deployment,
        route: Route,
        table: pa.Table,
        request_id: str,
        arrived_ms: int,
        timeout: float,
    ) -> None:
        started = time.perf_counter()
        try:
            outputs, build_id = await deployment.batcher(route).predict(table, timeout)
        except MallardError as exc:
            latency = (time.perf_counter() - started) * 1000
            self._record(deployment, route, "", request_id, arrived_ms, latency, table, None, exc)
            return
        latency = (time.perf_counter() - started) * 1000
        self._record(deployment, route, build_id, request_id, arrived_ms, latency, table, outputs, None)

    def _record(self, deployment: Deployment, route: Route | None, *args: Any) -> None:
        if self.recorder is not None:
            record_prediction(self.recorder, deployment, route, *args)

    def _timeout(self, deployment: Deployment) -> float:
        timeout_ms = deployment.spec.get("timeout_ms")
        return timeout_ms / 1000 if isinstance(timeout_ms, int) and timeout_ms > 0 else self.default_timeout_s


def _field_of(problem: str) -> str:
    """The field a check_apply_spec sentence starts with ("variations[0].build_id is required")."""
    first = problem.split(" ", 1)[0]
    return first if _FIELD.match(first) else "variations"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _normalised(spec: ApplySpec) -> ApplySpec:
    out: ApplySpec = json.loads(json.dumps(spec))  # a private copy, JSON-shaped as persisted
    out.setdefault("revision", 0)
    out.setdefault("kind", DeploymentKind.REALTIME.value)
    out.setdefault("runtime", "local")
    out.setdefault("logging", True)
    out.setdefault("model", out["deployment_id"])
    for variation in out["variations"]:
        variation.setdefault("name", "default")
        variation.setdefault("weight", 100)
        variation.setdefault("shadow", False)
        variation.setdefault("replicas", 1)
        variation.setdefault("image", None)
    return out
