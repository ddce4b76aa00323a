"""Traffic through the engine under load: weighted split, shadows, rolling redeploy, a replica
killed -9, and an engine restarted from its persisted desired state. Real replica processes."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa

from data_plane_agent.link.outbox import Outbox
from data_plane_agent.serving import ServingEngine
from data_plane_agent.storage import LocalObjectStore
from tests.data_plane_agent.serving.helpers import (
    apply_spec,
    state_of,
    statuses,
    toy_artifact,
    toy_engine,
    until,
    variation,
)
from tests.helpers.servers import repo_root

CONCURRENCY = 8


class Load:
    """CONCURRENCY clients predicting back to back until stopped; counts answers and failures."""

    def __init__(self, engine: ServingEngine) -> None:
        self.engine = engine
        self.builds: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _client(self, k: int) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            x = float(k * 1_000_000 + i)
            try:
                outcome = await self.engine.predict("toy", pa.table({"x": [x]}), request_id=f"c{k}-{i}")
                assert outcome.outputs.column("y").to_pylist() == [2 * x]
                self.builds[outcome.build_id] += 1
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client(k)) for k in range(CONCURRENCY)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def total(self) -> int:
        return sum(self.builds.values())


async def test_traffic_splits_80_20_and_shadow_answers_are_recorded_never_returned(
    tmp_path: Path, store: LocalObjectStore
) -> None:
    a, b, s = (toy_artifact(store, tmp_path, name) for name in ("bld_a", "bld_b", "bld_s"))
    engine, records = toy_engine(tmp_path / "home", store, None)
    await engine.start()
    try:
        spec = apply_spec(
            "dep_1",
            [
                variation("champion", "bld_a", a, weight=80),
                variation("challenger", "bld_b", b, weight=20),
                variation("shadow", "bld_s", s, weight=0, shadow=True),
            ],
        )
        await engine.apply(spec)
        await until(lambda: state_of(engine, "dep_1") == "RUNNING", what="three variations ready")

        n = 2000
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> str:
            async with semaphore:
                outcome = await engine.predict("toy", pa.table({"x": [float(i)]}), request_id=f"r{i}")
            assert outcome.outputs.column("y").to_pylist() == [2.0 * i]
            return outcome.variation

        answered = Counter(await asyncio.gather(*(one(i) for i in range(n))))
        assert set(answered) == {"champion", "challenger"}  # the shadow never answers
        # Binomial(2000, 0.8): standard deviation ~17.9; 5 of them is a false alarm once in millions.
        tolerance = 5 * math.sqrt(n * 0.8 * 0.2)
        assert abs(answered["champion"] - 0.8 * n) < tolerance, answered

        await until(lambda: sum(r.shadow for r in records) == n, what="every shadow answer recorded")
        shadow_records = [r for r in records if r.shadow]
        assert {(r.variation, r.build_id, r.status) for r in shadow_records} == {("shadow", "bld_s", "ok")}
        assert {r.request_id for r in shadow_records} == {f"r{i}" for i in range(n)}
        live = [r for r in records if not r.shadow]
        assert len(live) == n and Counter(r.variation for r in live) == answered
    finally:
        await engine.shutdown(5)


async def test_a_rolling_redeploy_under_constant_load_fails_no_request(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox
) -> None:
    old, new = toy_artifact(store, tmp_path, "bld_old"), toy_artifact(store, tmp_path, "bld_new")
    engine, _ = toy_engine(tmp_path / "home", store, outbox)
    await engine.start()
    load = Load(engine)
    try:
        await engine.apply(apply_spec("dep_1", [variation("default", "bld_old", old, replicas=2)]))
        await until(lambda: state_of(engine, "dep_1") == "RUNNING")
        load.start()
        await until(lambda: load.total() > 200, what="load on the old build")

        await engine.apply(apply_spec("dep_1", [variation("default", "bld_new", new, replicas=2)], revision=2))
        await until(lambda: state_of(engine, "dep_1") == "ROLLING", what="the rollout to start")
        await until(lambda: state_of(engine, "dep_1") == "RUNNING", what="the rollout to finish")
        served_before = load.builds["bld_new"]
        await until(lambda: load.builds["bld_new"] > served_before + 200, what="load on the new build")
        await load.stop()

        assert load.failures == []
        assert load.builds["bld_old"] > 200 and load.builds["bld_new"] > 200
        replicas = engine._deployments["dep_1"].replicas
        assert sorted(r.build_id for r in replicas) == ["bld_new", "bld_new"]
        states = [p["state"] for p in statuses(outbox, "dep_1")]
        assert "ROLLING" in states and states[-1] == "RUNNING"
    finally:
        await load.stop()
        await engine.shutdown(5)


async def test_a_replica_killed_under_load_is_restarted_and_only_in_flight_requests_may_fail(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox
) -> None:
    digest = toy_artifact(store, tmp_path, "bld_a")
    engine, _ = toy_engine(tmp_path / "home", store, outbox)
    await engine.start()
    load = Load(engine)
    try:
        await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest, replicas=2)]))
        await until(lambda: state_of(engine, "dep_1") == "RUNNING")
        load.start()
        await until(lambda: load.total() > 200)

        victim = engine._deployments["dep_1"].replicas[0]
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        await until(lambda: victim.restarts == 1 and victim.ready, what="the killed replica restarted")
        await until(lambda: state_of(engine, "dep_1") == "RUNNING")
        answered_before = load.total()
        await until(lambda: load.total() > answered_before + 200, what="load after the restart")
        await load.stop()

        # At most the requests in flight at the kill fail (one per client); the engine retries
        # the others on the surviving replica.
        assert len(load.failures) <= CONCURRENCY, load.failures
        reported = statuses(outbox, "dep_1")
        degraded = [p for p in reported if p["state"] == "DEGRADED"]
        assert degraded and "exited (code -9) and is being restarted" in degraded[0]["message"]
        assert any(r["restarts"] == 1 for r in reported[-1]["replicas"])
        assert reported[-1]["state"] == "RUNNING"
    finally:
        await load.stop()
        await engine.shutdown(5)


async def test_a_restarted_engine_serves_its_deployments_again_without_the_control_plane(
    tmp_path: Path, store: LocalObjectStore
) -> None:
    digest = toy_artifact(store, tmp_path, "bld_a")
    engine, _ = toy_engine(tmp_path / "home", store, None)
    await engine.start()
    await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)], revision=3))
    await until(lambda: state_of(engine, "dep_1") == "RUNNING")
    first_pid = engine._deployments["dep_1"].replicas[0].pid
    await engine.shutdown(5)
    assert first_pid is not None and not _alive(first_pid)  # shutdown stopped its replicas

    again, _ = toy_engine(tmp_path / "home", store, None)
    await again.start()  # nothing applied: the desired state comes from serving.db
    try:
        await until(lambda: state_of(again, "dep_1") == "RUNNING", what="the restored deployment")
        outcome = await again.predict("toy", pa.table({"x": [4.0]}), request_id="after-restart")
        assert outcome.outputs.column("y").to_pylist() == [8.0]
        assert again.deployments()[0]["revision"] == 3
        older = await again.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)], revision=2))
        assert older["applied"] is False  # the restored revision still wins over an older one
    finally:
        await again.shutdown(5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


async def test_an_engine_killed_9_leaves_no_replica_behind_and_the_next_one_restores_its_deployment(
    tmp_path: Path, store: LocalObjectStore
) -> None:
    digest = toy_artifact(store, tmp_path, "bld_a")
    spec = apply_spec("dep_1", [variation("default", "bld_a", digest)], revision=5)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.data_plane_agent.serving.engine_proc",
        str(tmp_path / "home"),
        str(store.root),
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        cwd=repo_root(),
        env={**os.environ, "PYTHONPATH": str(repo_root())},
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()
    assert line[0] == "ready", line
    replica_pid = int(line[1])
    process.kill()  # the engine's process dies at once: no shutdown, no cleanup
    await process.wait()
    await until(lambda: not _alive(replica_pid), timeout=10, what="the orphaned replica to die with its engine")

    engine, _ = toy_engine(tmp_path / "home", store, None)
    await engine.start()
    try:
        await until(lambda: state_of(engine, "dep_1") == "RUNNING", what="the deployment restored")
        outcome = await engine.predict("toy", pa.table({"x": [1.5]}), request_id="r")
        assert outcome.outputs.column("y").to_pylist() == [3.0] and engine.deployments()[0]["revision"] == 5
    finally:
        await engine.shutdown(5)


async def test_a_new_build_that_does_not_start_leaves_the_old_one_serving_and_says_why(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox
) -> None:
    good, bad = toy_artifact(store, tmp_path, "bld_good"), toy_artifact(store, tmp_path, "bld_bad", broken=True)
    engine, _ = toy_engine(tmp_path / "home", store, outbox)
    await engine.start()
    load = Load(engine)
    try:
        await engine.apply(apply_spec("dep_1", [variation("default", "bld_good", good)]))
        await until(lambda: state_of(engine, "dep_1") == "RUNNING")
        load.start()
        await engine.apply(apply_spec("dep_1", [variation("default", "bld_bad", bad)], revision=2))
        await until(lambda: state_of(engine, "dep_1") == "DEGRADED", what="the failed rollout reported")
        served = load.total()
        await until(lambda: load.total() > served + 100, what="the old build still serving")
        await load.stop()

        assert load.failures == [] and set(load.builds) == {"bld_good"}
        message = statuses(outbox, "dep_1")[-1]["message"]
        assert "replica of build bld_bad did not start (exit code 3)" in message and "sha256" in message
        assert [r.build_id for r in engine._deployments["dep_1"].replicas] == ["bld_good"]
    finally:
        await load.stop()
        await engine.shutdown(5)
