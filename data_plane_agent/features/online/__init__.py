"""Online stores behind one interface: SQLite (embedded default) and Redis (production)."""

from __future__ import annotations

from pathlib import Path

from data_plane_agent.features.online.base import OnlineStore, OnlineTable, entity_key, entity_key_sql
from data_plane_agent.features.online.sqlite import SqliteOnlineStore


def open_online_store(url: str, *, default_path: Path) -> OnlineStore:
    """`redis://host:port/db` -> Redis; `sqlite:///path` or empty -> SQLite (at `default_path` when empty)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from data_plane_agent.features.online.redis import RedisOnlineStore

        return RedisOnlineStore(url)
    if not url:
        return SqliteOnlineStore(default_path)
    if url.startswith("sqlite:///"):
        return SqliteOnlineStore(Path(url[len("sqlite://") :]))
    raise ValueError(f"online store URL {url!r}: use sqlite:///path or redis://host:port/db")


__all__ = ["OnlineStore", "OnlineTable", "SqliteOnlineStore", "entity_key", "entity_key_sql", "open_online_store"]
