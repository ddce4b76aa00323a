"""Feature-store fixtures: an engine over a local object store with a SQLite or a real Redis online store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from data_plane_agent.features import FeatureEngine
from data_plane_agent.features.online import OnlineStore, SqliteOnlineStore
from data_plane_agent.storage import LocalObjectStore
from tests.helpers.servers import redis_server

EngineFactory = Callable[[Path], FeatureEngine]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def make_engine(root: Path, online: OnlineStore | None = None) -> FeatureEngine:
    """An engine with its home, object store and (default SQLite) online store under `root`."""
    return FeatureEngine(
        root / "home",
        LocalObjectStore(root / "store"),
        online or SqliteOnlineStore(root / "online.sqlite"),
        "tenant-a",
        memory_limit="512MB",
        threads=2,
    )


@pytest.fixture(params=["sqlite", "redis"])
def online_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    """The same contract over the embedded SQLite store and a real redis-server."""
    if request.param == "sqlite":
        store: OnlineStore = SqliteOnlineStore(tmp_path / "online.sqlite")
    else:
        from data_plane_agent.features.online.redis import RedisOnlineStore

        url: str = request.getfixturevalue("redis_url")
        store = RedisOnlineStore(url)
        store._redis.flushdb()
    yield store
    store.close()
