"""Real builds of the scaffolded scikit-learn project for serving tests (slow: a cold build
installs scikit-learn into a virtualenv or a dependency image)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from data_plane_agent.builds import Builder, BuildManager
from data_plane_agent.builds.environments import SdkWheel, SdkWheels
from data_plane_agent.builds.log import BuildLog
from data_plane_agent.builds.steps import CancelToken, child_env
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore, build_log_key
from tests.data_plane_agent.builds.conftest import scaffold_context
from tests.data_plane_agent.builds.helpers import TENANT, events, spec, wait_final

CHURN_INPUTS = {"tenure_months": [1.0, 30.0, 70.0], "monthly_spend": [120.0, 60.0, 20.0], "support_calls": [5, 1, 0]}


@dataclass(frozen=True)
class Built:
    """A finished build: its store, artifact digest and (Docker builder) image."""

    root: Path
    store: LocalObjectStore
    build_id: str
    artifact_digest: str
    image: str | None


def pip_cache() -> Path:
    path = Path(os.environ.get("MALLARD_TEST_PIP_CACHE", Path.home() / ".cache" / "mallard-test-pip"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sdk_wheel(cache: Path) -> SdkWheel:
    """The SDK wheel of this checkout, built once into `cache` and pinned (later edits do not move it)."""
    log = BuildLog(cache / "wheel.log", store=None, build_id="sdk-wheel")
    try:
        return SdkWheels(cache / "sdk-wheels").ensure(
            log=log, cancel=CancelToken(), deadline=time.monotonic() + 300, env=child_env(dict(os.environ))
        )
    finally:
        log.close()


def build_scaffold(root: Path, builder: Builder, build_id: str) -> Built:
    """Build the scaffolded churn project with `builder`; fails with the build log's tail."""
    store = LocalObjectStore(root / "store")
    outbox = Outbox(root / "home" / "state.db")
    manager = BuildManager(
        home=root / "home", store=store, outbox=outbox, tenant_id=TENANT, builders={builder.name: builder}
    )
    manager.start()
    try:
        digest = scaffold_context(store, root / "churn")
        manager.submit(spec(build_id, digest, builder=builder.name))
        status = wait_final(manager, build_id, timeout=1200)
        if status != "SUCCEEDED":
            with store.open_read(build_log_key(build_id)) as handle:
                raise AssertionError(f"build {build_id} {status}:\n{handle.read().decode()[-3000:]}")
        finished = events(outbox, build_id)[-1][1]
    finally:
        manager.shutdown(timeout=10)
        outbox.close()
    assert isinstance(finished, dict)
    return Built(root, store, build_id, finished["artifact_digest"], finished.get("image"))
