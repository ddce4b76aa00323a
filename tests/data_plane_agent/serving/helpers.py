"""Serving test helpers: toy artifacts in a store, engines on the agent's own Python, waiting."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from data_plane_agent.builds.environments import SdkWheels, VirtualEnvironments
from data_plane_agent.builds.packaging import write_artifact
from data_plane_agent.lake.records import PredictionRecord
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.serving import ServingEngine
from data_plane_agent.serving.artifacts import ArtifactCache
from data_plane_agent.serving.runtimes import LocalRuntime
from data_plane_agent.storage import ObjectStore, artifact_key
from shared.serving import STATUS_EVENT, ApplySpec, VariationSpec
from tests.mallard.serving.toy import save_toy_model


def toy_artifact(
    store: ObjectStore,
    root: Path,
    build_id: str,
    *,
    delay: float = 0.0,
    broken: bool = False,
    source: str | None = None,
) -> str:
    """Save the toy model, package it as build `build_id`'s artifact in `store`; its digest.
    `broken`: the saved state is corrupted, so the model does not load."""
    work = root / f"toy-{build_id}"
    model_dir = save_toy_model(work, delay=delay, **({"source": source} if source else {}))
    if broken:
        (model_dir / "attributes" / "factor.json").write_text("3.0")  # no longer matches its sha256
    target = work / "artifact.tar.gz"
    hexdigest, _size = write_artifact(
        target=target, manifest={"build_id": build_id, "model": "toy"}, model_dir=model_dir, project=work / "project"
    )
    digest = f"sha256:{hexdigest}"
    store.put_file(artifact_key(digest), target)
    return digest


def variation(name: str, build_id: str, digest: str, **extra: Any) -> VariationSpec:
    base: dict[str, Any] = {
        "name": name,
        "build_id": build_id,
        "artifact_digest": digest,
        "image": None,
        "weight": 100,
        "shadow": False,
        "replicas": 1,
    }
    base.update(extra)
    return base  # type: ignore[return-value]


def apply_spec(deployment_id: str, variations: list[VariationSpec], **extra: Any) -> ApplySpec:
    base: dict[str, Any] = {
        "deployment_id": deployment_id,
        "name": "toy",
        "model": "toy",
        "kind": "realtime",
        "runtime": "local",
        "revision": 1,
        "logging": True,
        "timeout_ms": 10_000,
        "variations": variations,
    }
    base.update(extra)
    return base  # type: ignore[return-value]


def toy_engine(
    home: Path, store: ObjectStore, outbox: Outbox | None, **replica_options: float
) -> tuple[ServingEngine, list[PredictionRecord]]:
    """An engine whose local replicas run on this Python (the toy model needs only pandas);
    its recorder appends to the returned list."""
    runtime = LocalRuntime(
        artifacts=ArtifactCache(home / "serving" / "artifacts", store),
        sdk=SdkWheels(home / "cache" / "sdk-wheels"),
        environments=VirtualEnvironments(home / "cache" / "envs"),
        work_dir=home / "serving",
        pip_cache=home / "cache" / "pip",
        python=Path(sys.executable),
    )
    engine = ServingEngine(
        home=home,
        runtimes={"local": runtime},
        store=store,
        outbox=outbox,
        replica_options={"backoff_initial": 0.2, **replica_options},
    )
    records: list[PredictionRecord] = []
    engine.recorder = records.append
    return engine, records


@asynccontextmanager
async def running_toy(
    tmp_path: Path, store: ObjectStore, build_id: str, **artifact: Any
) -> AsyncIterator[tuple[ServingEngine, list[PredictionRecord]]]:
    """A started toy engine with deployment `dep_1` (model `toy`, one default variation of
    `build_id`) RUNNING, and its records; shut down when the block ends."""
    digest = toy_artifact(store, tmp_path, build_id, **artifact)
    engine, records = toy_engine(tmp_path / "home", store, None)
    await engine.start()
    try:
        await engine.apply(apply_spec("dep_1", [variation("default", build_id, digest)]))
        await until(lambda: state_of(engine, "dep_1") == "RUNNING")
        yield engine, records
    finally:
        await engine.shutdown(5)


async def until(predicate: Callable[[], object], *, timeout: float = 60.0, what: str = "") -> Any:
    """Wait for `predicate()` to be truthy, polling, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def statuses(outbox: Outbox, deployment_id: str) -> list[dict[str, Any]]:
    found = [json.loads(e.payload_json) for e in outbox.unacked(limit=100_000) if e.type == STATUS_EVENT]
    return [p for p in found if p["deployment_id"] == deployment_id]


def state_of(engine: ServingEngine, deployment_id: str) -> str | None:
    return next((d["state"] for d in engine.deployments() if d["deployment_id"] == deployment_id), None)
