from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from data_plane_agent.builds import Builder, BuildManager
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore
from tests.data_plane_agent.builds.helpers import TENANT


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
        builders: dict[str, Builder], *, max_concurrent: int = 2, start: bool = True, **kw: object
    ) -> BuildManager:
        manager = BuildManager(
            home=tmp_path / "home",
            store=store,
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
