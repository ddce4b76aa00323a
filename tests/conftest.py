"""Shared fixtures: a migrated control-plane database on SQLite and on PostgreSQL."""

from __future__ import annotations

import os

# Before anything imports grpc: tests fork model replicas and build steps next to gRPC servers
# and channels (see data_plane_agent/__init__.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import fresh_postgres_database


@pytest.fixture(autouse=True)
def _stop_leftover_processes() -> Iterator[None]:
    """Whatever a test started (agents, gateways, APIs) is stopped when it ends, pass or fail."""
    from tests.helpers.stack import RUNNING

    yield
    while RUNNING:
        proc = RUNNING.pop()
        if proc.alive:
            proc.kill9()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated database: a SQLite file, then a fresh PostgreSQL database."""
    from control_plane.db import get_engine, migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cp.db'}"
        migrate(url)
        yield url
        get_engine(url).dispose()
    else:
        with fresh_postgres_database() as url:
            migrate(url)
            yield url
            get_engine(url).dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A migrated SQLite database only (for tests where the backend does not matter)."""
    from control_plane.db import get_engine, migrate

    url = f"sqlite:///{tmp_path / 'cp.db'}"
    migrate(url)
    yield url
    get_engine(url).dispose()
