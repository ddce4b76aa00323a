"""One deployment on this agent: its replicas, their routing, and the loop that reconciles them to
the desired spec.

Reconciling a variation to a new build is a rolling update, one replica at a time: a new
replica starts and answers /ready, it joins the routing set, one old replica leaves it, the old
one drains (its in-flight requests finish) and is stopped. A new build that does not start
leaves the old replicas serving and the deployment DEGRADED with the reason. Weights change at
once. Every change of state is reported through `report`.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from data_plane_agent.serving.batching import RouteBatcher
from data_plane_agent.serving.routing import Route
from data_plane_agent.serving.runtimes import Prepared, PrepareFailed, ServingRuntime, Target
from data_plane_agent.serving.supervisor import Replica, ReplicaEvent
from mallard.schema import ModelSchema
from shared.serving import ApplySpec, DeploymentKind, DeploymentState, ReplicaStatus, StatusPayload, VariationSpec

log = logging.getLogger("mallard.agent.serving")
DRAIN_SECONDS = 30.0
RETRY_INITIAL_SECONDS = 15.0
RETRY_MAX_SECONDS = 300.0


class Deployment:
    """Owned by the engine; `spec` is the desired state, `reconcile()` runs in the background."""

    def __init__(
        self,
        spec: ApplySpec,
        *,
        runtimes: dict[str, ServingRuntime],
        report: Callable[[Deployment], None],
        replica_options: dict[str, float] | None = None,
    ) -> None:
        self.spec = spec
        self.id = spec["deployment_id"]
        self.runtimes = runtimes
        self.report = report
        self.replica_options = replica_options or {}
        self.replicas: list[Replica] = []
        self.prepared: dict[Target, Prepared] = {}
        self.schema: ModelSchema | None = None
        self.state = DeploymentState.PENDING
        self.message = ""
        self.final_state: DeploymentState | None = None  # a batch job's outcome, or STOPPED
        self.silent = False  # while winding down: the final state is reported once, at the end
        self.problems: dict[str, str] = {}  # variation -> why its target cannot run
        self.crashes: dict[str, str] = {}  # replica -> its last crash, until it is ready again
        self.wake = asyncio.Event()
        self.reconciling = False
        self.live: list[Route] = []
        self._cumulative: list[int] = []
        self.shadows: list[Route] = []
        self._batchers: dict[str, RouteBatcher] = {}  # variation -> its queue (engine-side micro-batching)
        self.task: asyncio.Task[None] | None = None

    @property
    def model(self) -> str:
        return str(self.spec.get("model", ""))

    @property
    def kind(self) -> str:
        return str(self.spec.get("kind", DeploymentKind.REALTIME))

    @property
    def revision(self) -> int:
        return int(self.spec.get("revision", 0))

    def target(self, variation: VariationSpec) -> Target:
        return Target(
            build_id=variation["build_id"],
            artifact_digest=variation["artifact_digest"],
            image=variation.get("image"),
            runtime=str(self.spec.get("runtime", "local")),
        )

    # ---- routing (the predict hot path reads live/shadows) ------------------------------

    def pick_live(self) -> Route | None:
        if not self.live:
            return None
        if len(self.live) == 1:
            return self.live[0]
        point = random.random() * self._cumulative[-1]
        return self.live[bisect.bisect_right(self._cumulative, point)]

    def rebuild_routes(self) -> None:
        live, shadows, cumulative, total = [], [], [], 0
        for variation in self.spec.get("variations", []):
            replicas = [r for r in self.replicas if r.variation == variation["name"] and r.routable]
            if not replicas:
                continue
            route = Route(variation["name"], bool(variation.get("shadow")), int(variation.get("weight", 0)), replicas)
            if route.shadow:
                shadows.append(route)
            elif route.weight > 0:
                total += route.weight
                live.append(route)
                cumulative.append(total)
        self.live, self.shadows, self._cumulative = live, shadows, cumulative
        for route in [*live, *shadows]:  # queued requests go to the replicas routable when they are sent
            batcher = self._batchers.get(route.name)
            if batcher is not None:
                batcher.route = route
        self._refresh_schema()

    def batcher(self, route: Route) -> RouteBatcher:
        """The micro-batching queue of `route`'s variation (see batching.py)."""
        batcher = self._batchers.get(route.name)
        if batcher is None:
            batcher = self._batchers[route.name] = RouteBatcher(route)
        return batcher

    def on_replica(self, replica: Replica, event: ReplicaEvent) -> None:
        if event == ReplicaEvent.READY:
            replica.routable = not replica.retiring
        else:
            replica.routable = False
        if event == ReplicaEvent.DOWN:
            log.warning("replica %s of deployment %s went down; restarting it", replica.name, self.id)
            self.crashes[replica.name] = (
                f"a replica of build {replica.build_id} exited (code {replica.last_exit_code}) and is being "
                f"restarted (restarts: {replica.restarts})"
            )
        elif event != ReplicaEvent.FAILED:
            self.crashes.pop(replica.name, None)
        self.rebuild_routes()
        self.refresh_state()

    # ---- reconciling -----------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile whenever `wake` is set (a new spec), until cancelled. While something cannot
        start (an artifact the store cannot give, a model that does not load), try again with
        backoff: the cause may be passing, and the deployment reports FAILED/DEGRADED meanwhile."""
        retry = RETRY_INITIAL_SECONDS
        while True:
            if self.problems:
                try:
                    await asyncio.wait_for(self.wake.wait(), retry)
                    retry = RETRY_INITIAL_SECONDS
                except TimeoutError:
                    retry = min(retry * 2, RETRY_MAX_SECONDS)
            else:
                await self.wake.wait()
                retry = RETRY_INITIAL_SECONDS
            self.wake.clear()
            self.reconciling = True
            self.refresh_state()
            try:
                await self.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the loop: report it and wait for the next spec
                log.exception("reconciling deployment %s failed", self.id)
                self.problems["*"] = f"reconciling failed: {type(exc).__name__}: {exc}"
            finally:
                self.reconciling = False
            self.refresh_state()

    async def reconcile(self) -> None:
        self.rebuild_routes()  # weights first: they apply at once
        wanted = {v["name"]: v for v in self.spec.get("variations", [])}
        self.problems.pop("*", None)
        for variation in list(wanted.values()):
            if self.wake.is_set():
                return  # a newer spec arrived: start over with it
            await self._reconcile_variation(variation)
        for replica in [r for r in self.replicas if r.variation not in wanted]:
            await self.retire(replica)
        self.rebuild_routes()

    async def _reconcile_variation(self, variation: VariationSpec) -> None:
        name, target = variation["name"], self.target(variation)
        prepared = await self._prepare(name, target)
        if prepared is None:
            return
        desired = int(variation.get("replicas", 1))
        while not self.wake.is_set():
            current = [r for r in self.replicas if r.variation == name and not r.retiring]
            matching = [r for r in current if r.prepared.target == target and r.failure is None]
            stale = [r for r in current if r not in matching]
            if len(matching) < desired:
                replica = self._start(name, prepared)
                if not await replica.wait_settled():
                    self.problems[name] = replica.failure or "the replica did not start"
                    await self.retire(replica)
                    return  # the old replicas, if any, keep serving
                self.problems.pop(name, None)
                if stale:
                    await self.retire(stale[0])
            elif stale:
                await self.retire(stale[0])
            elif len(matching) > desired:
                await self.retire(matching[-1])
            else:
                return

    async def _prepare(self, name: str, target: Target) -> Prepared | None:
        prepared = self.prepared.get(target)
        if prepared is not None:
            return prepared
        runtime = self.runtimes.get(target.runtime)
        try:
            if runtime is None:
                raise PrepareFailed(f"runtime {target.runtime!r} is not available on this agent")
            prepared = await runtime.prepare(target)
        except PrepareFailed as exc:
            self.problems[name] = str(exc)
            return None
        self.prepared[target] = prepared
        self._refresh_schema()
        return prepared

    def _refresh_schema(self) -> None:
        """The schema requests are checked against: the one of the build live traffic goes to (the
        new build as soon as one of its replicas serves, during a rollout), else the desired build's."""
        fallback = None
        for variation in self.spec.get("variations", []):
            if variation.get("shadow"):
                continue
            target = self.target(variation)
            serving = [r for r in self.replicas if r.variation == variation["name"] and r.routable]
            newest = [r for r in serving if r.prepared.target == target]
            if newest or serving:
                self.schema = (newest or serving)[0].prepared.artifact.schema
                return
            if fallback is None and target in self.prepared:
                fallback = self.prepared[target].artifact.schema
        if fallback is not None:
            self.schema = fallback

    def _variation(self, name: str) -> VariationSpec:
        return next(v for v in self.spec.get("variations", []) if v["name"] == name)

    def _start(self, variation: str, prepared: Prepared) -> Replica:
        runtime = self.runtimes[prepared.target.runtime]
        replica = Replica(
            deployment_id=self.id,
            variation=variation,
            prepared=prepared,
            runtime=runtime,
            on_change=self.on_replica,
            **self.replica_options,
        )
        self.replicas.append(replica)
        replica.start()
        self.refresh_state()
        return replica

    async def retire(self, replica: Replica, drain_seconds: float = DRAIN_SECONDS) -> None:
        """Out of routing, drained, stopped."""
        replica.retiring = True
        replica.routable = False
        self.rebuild_routes()
        await replica.drain(drain_seconds)
        await replica.stop()
        if replica in self.replicas:
            self.replicas.remove(replica)
        self.crashes.pop(replica.name, None)
        self.refresh_state()

    async def stop(self, drain_seconds: float = DRAIN_SECONDS) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        deadline = time.monotonic() + drain_seconds  # requests queued for a replica are in flight too
        while any(not b.idle for b in self._batchers.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.gather(*(self.retire(r, drain_seconds) for r in list(self.replicas)))

    # ---- status -----------------------------------------------------------------------------

    def ready_count(self) -> tuple[int, int]:
        """(ready replicas of the desired targets, desired replicas)."""
        desired = ready = 0
        for variation in self.spec.get("variations", []):
            desired += int(variation.get("replicas", 1))
            target = self.target(variation)
            ready += sum(
                1
                for r in self.replicas
                if r.variation == variation["name"] and r.prepared.target == target and r.ready and not r.retiring
            )
        return ready, desired

    def refresh_state(self, state: DeploymentState | None = None, message: str | None = None) -> None:
        """Work out the state from the replicas (unless given) and report it (the engine drops repeats)."""
        if state is None and self.final_state is not None:
            state, message = self.final_state, self.message
        if state is None:
            ready, desired = self.ready_count()
            serving = any(r.routable for r in self.replicas)
            if ready >= desired and not self.problems and not self.reconciling:
                state = DeploymentState.RUNNING
            elif self.problems and not serving:
                state = DeploymentState.FAILED
            elif self.reconciling and not self.problems:
                state = DeploymentState.ROLLING if serving else DeploymentState.PENDING
            else:
                state = DeploymentState.DEGRADED if serving or self.crashes else DeploymentState.PENDING
            message = "; ".join([*self.problems.values(), *self.crashes.values()])[:500]
        self.state, self.message = state, message or ""
        if not self.silent:
            self.report(self)

    def status(self) -> StatusPayload:
        replicas = [
            ReplicaStatus(variation=r.variation, build_id=r.build_id, ready=r.ready, restarts=r.restarts)
            for r in self.replicas
        ]
        payload = StatusPayload(deployment_id=self.id, revision=self.revision, state=self.state, replicas=replicas)
        if self.message:
            payload["message"] = self.message
        return payload

    def view(self) -> dict[str, Any]:
        """The agent-local status view (GET /v1/deployments)."""
        ready, desired = self.ready_count()
        return {
            "deployment_id": self.id,
            "name": self.spec.get("name", ""),
            "model": self.model,
            "kind": self.kind,
            "runtime": self.spec.get("runtime", "local"),
            "revision": self.revision,
            "state": str(self.state),
            "message": self.message,
            "ready_replicas": ready,
            "desired_replicas": desired,
            "variations": [
                {k: v.get(k) for k in ("name", "build_id", "weight", "shadow", "replicas")}
                for v in self.spec.get("variations", [])
            ],
            "replicas": [dict(r) for r in self.status().get("replicas", [])],
        }
