"""Batch and streaming deployments: once their replicas are ready, run the job
(`data_plane_agent.jobs.run_job`) with a `predict(table) -> table` bound to those replicas.

A batch job that finishes stops its replicas and reports SUCCEEDED (remembered in serving.db,
so a restart does not run it again); one that fails reports FAILED with the reason. A streaming
job runs until its deployment is deleted or the agent stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from data_plane_agent.serving.calls import call_route
from mallard.serving.wire import encode_table
from shared.errors import Unavailable
from shared.serving import DeploymentKind, DeploymentState, StatusPayload

if TYPE_CHECKING:
    from data_plane_agent.serving.deployment import Deployment
    from data_plane_agent.serving.engine import ServingEngine

log = logging.getLogger("mallard.agent.serving")


class JobRunner:
    """The running jobs of an engine, one per batch or streaming deployment."""

    def __init__(self, engine: ServingEngine) -> None:
        self.engine = engine
        self._tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}

    def start(self, deployment: Deployment) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self._run(deployment, stop), name=f"job {deployment.id}")
        self._tasks[deployment.id] = (task, stop)

    async def stop(self, deployment: Deployment, grace_seconds: float) -> None:
        entry = self._tasks.pop(deployment.id, None)
        if entry is None:
            return
        task, stop = entry
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_seconds)
        except TimeoutError:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def stop_all(self, grace_seconds: float) -> None:
        deployments = [self.engine._deployments.get(i) for i in list(self._tasks)]
        await asyncio.gather(*(self.stop(d, grace_seconds) for d in deployments if d is not None))

    async def _run(self, deployment: Deployment, stop: asyncio.Event) -> None:
        # Replicas that cannot start are retried by the deployment (which reports why); wait for one.
        while deployment.pick_live() is None:
            if stop.is_set():
                return
            await asyncio.sleep(0.1)
        try:
            from data_plane_agent.jobs import run_job  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            await self._finish(deployment, DeploymentState.FAILED, "this agent cannot run batch or streaming jobs")
            return
        timeout = self.engine._timeout(deployment)

        async def predict(table: pa.Table) -> pa.Table:
            # A job outlives a replica's crash: wait (up to the timeout) for a ready one rather than fail.
            body = encode_table(table)
            deadline = time.monotonic() + timeout
            while True:
                route = deployment.pick_live()
                try:
                    if route is None:
                        raise Unavailable(f"deployment {deployment.id} has no ready replica")
                    outputs, _build = await call_route(route, body, max(0.1, deadline - time.monotonic()))
                    return outputs
                except Unavailable:
                    if time.monotonic() >= deadline or stop.is_set():
                        raise
                    await asyncio.sleep(0.1)

        def report(payload: StatusPayload) -> None:
            self.engine._report(deployment, payload)

        store = self.engine.store
        assert store is not None, "jobs need the data-plane object store"
        started = time.monotonic()
        try:
            await run_job(
                spec=deployment.spec, predict=predict, report=report, home=self.engine.home, store=store, stop=stop
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job of deployment %s failed", deployment.id)
            await self._finish(deployment, DeploymentState.FAILED, f"{type(exc).__name__}: {exc}"[:500])
            return
        if deployment.kind == DeploymentKind.BATCH and not stop.is_set():
            log.info("batch job %s finished in %.1fs", deployment.id, time.monotonic() - started)
            await self._finish(deployment, DeploymentState.SUCCEEDED, "")

    async def _finish(self, deployment: Deployment, state: DeploymentState, message: str) -> None:
        """Record the outcome first (a restart must not rerun it), then stop the replicas and report."""
        state_db: Any = self.engine._state
        if state_db is not None and deployment.kind == DeploymentKind.BATCH:
            state_db.finish(deployment.id, deployment.revision, state, now_ms=int(time.time() * 1000))
        self._tasks.pop(deployment.id, None)
        if deployment.task is not None:
            deployment.task.cancel()
        deployment.silent = True
        await asyncio.gather(*(deployment.retire(r) for r in list(deployment.replicas)))
        deployment.silent = False
        deployment.final_state, deployment.message = state, message
        deployment.refresh_state()
