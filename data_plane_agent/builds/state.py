"""The agent's own record of its builds (SQLite), for the data-plane API and crash recovery.

One row per build and one per phase attempt. The row is written before any work starts, so
after a crash the agent knows which builds were running (they are failed) and which were only
queued (they are run again).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS build (
    build_id TEXT PRIMARY KEY,
    spec_json TEXT,                  -- NULL for a cancel that arrived before its run command
    builder TEXT NOT NULL,
    status TEXT NOT NULL,            -- shared.builds.BuildStatus
    phase TEXT,                      -- current or last phase
    failed_phase TEXT,
    error_summary TEXT,
    params_json TEXT NOT NULL DEFAULT '{}',
    metrics_json TEXT NOT NULL DEFAULT '{}',
    artifact_digest TEXT,
    artifact_uri TEXT,
    image TEXT,
    pid INTEGER,                     -- process group of the running step, for recovery
    submitted_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER,
    finished_at_ms INTEGER
);
CREATE TABLE IF NOT EXISTS build_phase (
    build_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    state TEXT NOT NULL,             -- started | succeeded | failed | cancelled
    started_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER,
    PRIMARY KEY (build_id, phase)
);
"""


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class BuildRecord:
    """One build as this agent knows it."""

    build_id: str
    spec: dict[str, Any] | None
    builder: str
    status: str
    phase: str | None = None
    failed_phase: str | None = None
    error_summary: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifact_digest: str | None = None
    artifact_uri: str | None = None
    image: str | None = None
    pid: int | None = None
    submitted_at_ms: int = 0
    started_at_ms: int | None = None
    finished_at_ms: int | None = None
    phases: list[dict[str, Any]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        """The `GET /v1/builds/{id}` body."""
        return {
            "build_id": self.build_id,
            "status": self.status,
            "builder": self.builder,
            "phase": self.phase,
            "phases": self.phases,
            "failed_phase": self.failed_phase,
            "error_summary": self.error_summary,
            "params": self.params,
            "metrics": self.metrics,
            "artifact_digest": self.artifact_digest,
            "artifact_uri": self.artifact_uri,
            "image": self.image,
            "submitted_at": iso(self.submitted_at_ms),
            "started_at": iso(self.started_at_ms),
            "finished_at": iso(self.finished_at_ms),
        }


_COLUMNS = (
    "build_id, spec_json, builder, status, phase, failed_phase, error_summary, params_json, metrics_json, "
    "artifact_digest, artifact_uri, image, pid, submitted_at_ms, started_at_ms, finished_at_ms"
)


class BuildTable:
    """Thread-safe access to the build rows."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def insert(self, *, build_id: str, spec: dict[str, Any] | None, builder: str, status: str) -> bool:
        """Insert a new build; False if the id is already known (a redelivered command)."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO build (build_id, spec_json, builder, status, submitted_at_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (build_id, json.dumps(spec) if spec is not None else None, builder, status, now_ms()),
            )
            return cur.rowcount == 1

    def update(self, build_id: str, **values: Any) -> None:
        if not values:
            return
        for name in ("params", "metrics"):
            if name in values:
                values[f"{name}_json"] = json.dumps(values.pop(name), sort_keys=True)
        assignments = ", ".join(f"{name} = ?" for name in values)
        with self._lock:
            self._conn.execute(f"UPDATE build SET {assignments} WHERE build_id = ?", (*values.values(), build_id))

    def phase_started(self, build_id: str, phase: str, at_ms: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO build_phase (build_id, phase, state, started_at_ms) "
                "VALUES (?, ?, 'started', ?)",
                (build_id, phase, at_ms),
            )
            self._conn.execute("UPDATE build SET phase = ? WHERE build_id = ?", (phase, build_id))

    def phase_finished(self, build_id: str, phase: str, state: str, at_ms: int) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE build_phase SET state = ?, finished_at_ms = ? WHERE build_id = ? AND phase = ?",
                (state, at_ms, build_id, phase),
            )

    def get(self, build_id: str) -> BuildRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM build WHERE build_id = ?", (build_id,)).fetchone()
            if row is None:
                return None
            phases = self._conn.execute(
                "SELECT phase, state, started_at_ms, finished_at_ms FROM build_phase WHERE build_id = ? "
                "ORDER BY started_at_ms, rowid",
                (build_id,),
            ).fetchall()
        return self._record(row, phases)

    def with_status(self, *statuses: str) -> list[BuildRecord]:
        marks = ", ".join("?" for _ in statuses)
        with self._lock:
            ids = [
                r[0]
                for r in self._conn.execute(
                    f"SELECT build_id FROM build WHERE status IN ({marks}) ORDER BY submitted_at_ms", statuses
                )
            ]
        return [record for record in (self.get(i) for i in ids) if record is not None]

    @staticmethod
    def _record(row: tuple[Any, ...], phases: list[tuple[Any, ...]]) -> BuildRecord:
        (bid, spec_json, builder, status, phase, failed_phase, error, params_json, metrics_json, digest, uri, image,
         pid, submitted, started, finished) = row  # fmt: skip
        return BuildRecord(
            build_id=bid,
            spec=json.loads(spec_json) if spec_json else None,
            builder=builder,
            status=status,
            phase=phase,
            failed_phase=failed_phase,
            error_summary=error,
            params=json.loads(params_json or "{}"),
            metrics=json.loads(metrics_json or "{}"),
            artifact_digest=digest,
            artifact_uri=uri,
            image=image,
            pid=pid,
            submitted_at_ms=submitted,
            started_at_ms=started,
            finished_at_ms=finished,
            phases=[{"phase": p, "state": s, "started_at": iso(a), "finished_at": iso(b)} for p, s, a, b in phases],
        )
