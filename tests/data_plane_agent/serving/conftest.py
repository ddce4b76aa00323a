from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "store")


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "home" / "state.db")
    yield box
    box.close()
