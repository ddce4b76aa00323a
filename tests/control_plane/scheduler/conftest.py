"""Point `get_settings()` (what the tasks read) at the test's database and home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.settings import Settings, get_settings

HEARTBEAT_INTERVAL_MS = 1000  # offline after 3 missed heartbeats = 3 s
RETENTION_SECONDS = 3600


@pytest.fixture
def scheduler_settings(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.delenv("MALLARD_BROKER_URL", raising=False)
    monkeypatch.setenv("MALLARD_CP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MALLARD_DATABASE_URL", database_url)
    monkeypatch.setenv("MALLARD_HEARTBEAT_INTERVAL_MS", str(HEARTBEAT_INTERVAL_MS))
    monkeypatch.setenv("MALLARD_OFFLINE_AFTER_MISSED_HEARTBEATS", "3")
    monkeypatch.setenv("MALLARD_JOIN_TOKEN_RETENTION_SECONDS", str(RETENTION_SECONDS))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
