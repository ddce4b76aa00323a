from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from data_plane_agent.builds import Builder, BuildManager, LocalBuilder, SdkWheels, VirtualEnvironments
from data_plane_agent.builds.environments import SdkWheel
from data_plane_agent.builds.log import BuildLog
from data_plane_agent.builds.steps import CancelToken, child_env
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore, ObjectStore, context_key
from tests.data_plane_agent.builds.helpers import TENANT
from tests.helpers.object_stores import s3  # noqa: F401  (the shared session fixture)


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "store")


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "home" / "state.db")
    yield box
    box.close()


ManagerFactory = Callable[..., BuildManager]


@pytest.fixture
def make_manager(tmp_path: Path, store: LocalObjectStore, outbox: Outbox) -> Iterator[ManagerFactory]:
    """Build managers over one home, store and outbox; all are shut down at the end."""
    made: list[BuildManager] = []

    def factory(
        builders: dict[str, Builder],
        *,
        max_concurrent: int = 2,
        start: bool = True,
        object_store: ObjectStore | None = None,
        **kw: object,
    ) -> BuildManager:
        manager = BuildManager(
            home=tmp_path / "home",
            store=object_store or store,
            outbox=outbox,
            tenant_id=TENANT,
            builders=builders,
            max_concurrent=max_concurrent,
            log_sync_interval=0.2,
            **kw,  # type: ignore[arg-type]
        )
        made.append(manager)
        if start:
            manager.start()
        return manager

    yield factory
    for manager in made:
        manager.shutdown(timeout=10)


# ---- real builders (slow tests) ----------------------------------------------------------


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache (SDK wheel, environments, wheelhouses) for the session: the first build that
    needs an environment makes it (cold), later ones reuse it (warm)."""
    return tmp_path_factory.mktemp("build-cache")


@pytest.fixture(scope="session")
def pip_cache() -> Path:
    """pip's download cache outlives the session (as on a real agent), so reruns skip downloads."""
    path = Path(os.environ.get("MALLARD_TEST_PIP_CACHE", Path.home() / ".cache" / "mallard-test-pip"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def sdk_wheel(build_cache: Path) -> SdkWheel:
    """The SDK wheel built once from this checkout; pinned for the session so concurrent edits to
    the source tree do not change environment keys between tests."""
    store = LocalObjectStore(build_cache / "wheel-store")
    log = BuildLog(build_cache / "wheel.log", store=store, build_id="sdk-wheel")
    try:
        return SdkWheels(build_cache / "sdk-wheels").ensure(
            log=log, cancel=CancelToken(), deadline=time.monotonic() + 300, env=child_env(dict(os.environ))
        )
    finally:
        log.close()


@pytest.fixture
def local_builder(build_cache: Path, pip_cache: Path, sdk_wheel: SdkWheel) -> LocalBuilder:
    return LocalBuilder(
        sdk=SdkWheels(build_cache / "sdk-wheels", explicit_wheel=sdk_wheel.path),
        environments=VirtualEnvironments(build_cache / "envs"),
        pip_cache=pip_cache,
    )


def scaffold_context(store: LocalObjectStore | ObjectStore, directory: Path, **edits: str) -> str:
    """`mallard models init` into `directory`, apply `edits` (relative path -> text), pack the
    context as the CLI does and put it in the store; returns its digest."""
    from mallard.packing import pack_context
    from mallard.scaffold import init_project

    init_project(directory, name="churn")
    for rel, text in edits.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(text)
    packed = pack_context(directory, directory.parent / f"{directory.name}.tar.gz")
    store.put_file(context_key(packed.digest), packed.path)
    return packed.digest
