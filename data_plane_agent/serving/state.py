"""The engine's persisted desired state (`<home>/serving.db`): one row per deployment.

The spec is written before the engine reconciles to it, so an agent restarted for any reason
brings back what it served, without the control plane. A finished batch job keeps its row with
its final state, so a restart does not run it again; `deployment.delete` leaves a STOPPED tombstone, so a late
redelivery of an apply it superseded is ignored (a new apply comes with a higher revision).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from shared.serving import ApplySpec

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployment (
    deployment_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    spec_json TEXT NOT NULL,
    final_state TEXT,             -- SUCCEEDED / FAILED for a finished batch job, else NULL
    updated_at_ms INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class StoredDeployment:
    spec: ApplySpec
    revision: int
    final_state: str | None


class DesiredState:
    """Thread-safe SQLite store of deployment specs, durable once a call returns."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    def get(self, deployment_id: str) -> StoredDeployment | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT spec_json, revision, final_state FROM deployment WHERE deployment_id = ?", (deployment_id,)
            ).fetchone()
        return None if row is None else StoredDeployment(json.loads(row[0]), int(row[1]), row[2])

    def put(self, spec: ApplySpec, *, now_ms: int) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO deployment (deployment_id, revision, spec_json, final_state, updated_at_ms) "
                "VALUES (?, ?, ?, NULL, ?) ON CONFLICT (deployment_id) DO UPDATE SET revision = excluded.revision, "
                "spec_json = excluded.spec_json, final_state = NULL, updated_at_ms = excluded.updated_at_ms",
                (spec["deployment_id"], int(spec.get("revision", 0)), json.dumps(spec, sort_keys=True), now_ms),
            )

    def finish(self, deployment_id: str, revision: int, state: str, *, now_ms: int) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE deployment SET final_state = ?, updated_at_ms = ? WHERE deployment_id = ? AND revision = ?",
                (state, now_ms, deployment_id, revision),
            )

    def stop(self, deployment_id: str, *, now_ms: int) -> None:
        """Keep a STOPPED tombstone at the last revision, so a late redelivery of it is not deployed again."""
        with self._lock:
            self._conn.execute(
                "UPDATE deployment SET final_state = 'STOPPED', updated_at_ms = ? WHERE deployment_id = ?",
                (now_ms, deployment_id),
            )

    def all(self) -> list[StoredDeployment]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT spec_json, revision, final_state FROM deployment ORDER BY deployment_id"
            ).fetchall()
        return [StoredDeployment(json.loads(spec), int(revision), final) for spec, revision, final in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
