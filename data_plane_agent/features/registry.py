"""The agent's local record of applied feature definitions and of what materialization has done.

A SQLite file under the agent home: definitions (JSON, as the control plane sends them),
watermarks, last-materialized times and per-partition offline row counts. Feature values are
never stored here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mallard.features import AnyFeatureSet, FeatureSet, StreamFeatureSet, definition_from_dict
from shared.errors import NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS definitions (
    project TEXT, name TEXT, version INTEGER, kind TEXT, fingerprint TEXT, body TEXT, applied_at TEXT,
    PRIMARY KEY (project, name, version));
CREATE TABLE IF NOT EXISTS materializations (
    project TEXT, name TEXT, version INTEGER, watermark TEXT, last_materialized_at TEXT,
    PRIMARY KEY (project, name, version));
CREATE TABLE IF NOT EXISTS partitions (
    project TEXT, name TEXT, version INTEGER, day TEXT, rows INTEGER, parts TEXT,
    PRIMARY KEY (project, name, version, day));
"""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class MaterializationState:
    """Where incremental materialization resumes (`watermark`) and when it last ran."""

    watermark: datetime | None
    last_materialized_at: datetime | None
    offline_rows: int


class FeatureRegistry:
    """Applied definitions and materialization state for one agent (thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        if "parts" not in {row[1] for row in self._db.execute("PRAGMA table_info(partitions)")}:
            self._db.execute("ALTER TABLE partitions ADD COLUMN parts TEXT")  # registries from before the manifest
        # Parsed definitions, dropped whenever any connection (another process too) commits a change:
        # online reads look a definition up on every call and must not pay for JSON parsing.
        self._cache: dict[tuple[str, str, int | None], AnyFeatureSet] = {}
        self._version = -1

    def _fresh_cache(self) -> None:
        version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
        if version != self._version:
            self._cache.clear()
            self._version = version

    def put(self, project: str, definition: AnyFeatureSet) -> None:
        with self._lock:
            self._cache.clear()
            self._db.execute(
                "INSERT OR REPLACE INTO definitions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    project,
                    definition.name,
                    definition.version,
                    definition.kind,
                    definition.fingerprint,
                    json.dumps(definition.to_dict()),
                    _iso(datetime.now(UTC)),
                ),
            )

    def get(self, project: str, name: str, version: int | None = None) -> AnyFeatureSet:
        """The definition of `name` at `version` (latest when None); NotFound naming it otherwise."""
        with self._lock:
            self._fresh_cache()
            cached = self._cache.get((project, name, version))
            if cached is not None:
                return cached
            if version is None:
                row = self._db.execute(
                    "SELECT body FROM definitions WHERE project = ? AND name = ? ORDER BY version DESC LIMIT 1",
                    (project, name),
                ).fetchone()
            else:
                row = self._db.execute(
                    "SELECT body FROM definitions WHERE project = ? AND name = ? AND version = ?",
                    (project, name, version),
                ).fetchone()
        if row is None:
            which = f"{name!r}" + (f" version {version}" if version is not None else "")
            raise NotFound(
                f"feature set {which} is not applied in project {project!r}; run `mallard features apply`",
                field="feature_set",
            )
        definition = definition_from_dict(json.loads(row[0]))
        assert isinstance(definition, FeatureSet | StreamFeatureSet)
        with self._lock:
            self._cache[(project, name, version)] = definition
        return definition

    def find(self, project: str, name: str, version: int | None = None) -> AnyFeatureSet | None:
        try:
            return self.get(project, name, version)
        except NotFound:
            return None

    def projects(self) -> list[str]:
        """Projects with applied definitions."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT project FROM definitions ORDER BY project")]

    def list_definitions(self, project: str) -> list[AnyFeatureSet]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM definitions WHERE project = ? ORDER BY name, version", (project,)
            ).fetchall()
        out: list[AnyFeatureSet] = []
        for (body,) in rows:
            definition = definition_from_dict(json.loads(body))
            assert isinstance(definition, FeatureSet | StreamFeatureSet)
            out.append(definition)
        return out

    def state(self, project: str, name: str, version: int) -> MaterializationState:
        with self._lock:
            row = self._db.execute(
                "SELECT watermark, last_materialized_at FROM materializations "
                "WHERE project = ? AND name = ? AND version = ?",
                (project, name, version),
            ).fetchone()
            total = self._db.execute(
                "SELECT coalesce(sum(rows), 0) FROM partitions WHERE project = ? AND name = ? AND version = ?",
                (project, name, version),
            ).fetchone()[0]
        watermark, last = (row[0], row[1]) if row else (None, None)
        return MaterializationState(_parse(watermark), _parse(last), int(total))

    def manifest(self, project: str, name: str, version: int) -> dict[str, list[str]]:
        """The offline store's current parts: event date -> object keys."""
        with self._lock:
            rows = self._db.execute(
                "SELECT day, parts FROM partitions WHERE project = ? AND name = ? AND version = ? ORDER BY day",
                (project, name, version),
            ).fetchall()
        return {day: json.loads(parts or "[]") for day, parts in rows}

    def part_keys(self, project: str, name: str, version: int) -> list[str]:
        """Every part key of the manifest, in manifest order (partitions by day, then their parts)."""
        return [key for parts in self.manifest(project, name, version).values() for key in parts]

    def record_run(
        self,
        project: str,
        name: str,
        version: int,
        *,
        watermark: datetime | None,
        partitions: dict[str, tuple[int, list[str]]],
    ) -> None:
        """Commit a finished run in one transaction: the new watermark and, for every partition it
        rewrote, its row count and part keys (no rows: the partition is removed)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO materializations VALUES (?, ?, ?, ?, ?)",
                    (project, name, version, _iso(watermark), _iso(datetime.now(UTC))),
                )
                for day, (rows, parts) in partitions.items():
                    if rows:
                        self._db.execute(
                            "INSERT OR REPLACE INTO partitions VALUES (?, ?, ?, ?, ?, ?)",
                            (project, name, version, day, rows, json.dumps(parts)),
                        )
                    else:
                        self._db.execute(
                            "DELETE FROM partitions WHERE project = ? AND name = ? AND version = ? AND day = ?",
                            (project, name, version, day),
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


def describe(definition: AnyFeatureSet) -> dict[str, Any]:
    """Metadata of a definition (no values): name, version, kind, fingerprint."""
    return {
        "name": definition.name,
        "version": definition.version,
        "kind": definition.kind,
        "fingerprint": definition.fingerprint,
    }
