"""The agent's durable state (SQLite): the event outbox and the executed-commands table.

Events get a strictly increasing seq when appended and stay until the control plane acks
them, so they survive restarts and disconnects. A command id is executed at most once:
its row is written before the handler runs, and a redelivery is answered from the row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    occurred_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS executed_command (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    run_id TEXT NOT NULL,
    state TEXT NOT NULL,             -- running | succeeded | failed
    result_json TEXT,
    error TEXT,
    started_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER
);
CREATE TABLE IF NOT EXISTS acked (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    type: str
    payload_json: str
    occurred_at_ms: int


@dataclass(frozen=True)
class CommandRecord:
    id: str
    state: str
    run_id: str
    result_json: str | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed")


class Outbox:
    """Thread-safe; other processes may append too (WAL mode)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # an appended event survives power loss
        self._conn.execute("PRAGMA busy_timeout=30000")
        existed = self._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone() is not None
        self._conn.executescript(SCHEMA)
        # A brand-new state file has sent nothing yet: its first welcome may renumber it.
        self._conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('sequence_synced', ?)", ("1" if existed else "0",)
        )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # ---- events ------------------------------------------------------------------------

    def append(self, type_: str, payload: dict[str, Any]) -> int:
        if not type_:
            raise ValueError("event type is required")
        body = json.dumps(payload, sort_keys=True)
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO outbox (type, payload_json, occurred_at_ms) VALUES (?, ?, ?)",
                (type_, body, int(time.time() * 1000)),
            )
            return int(cur.lastrowid or 0)

    def unacked(self, *, after_seq: int = 0, limit: int = 256) -> list[OutboxEvent]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, type, payload_json, occurred_at_ms FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxEvent(*row) for row in rows]

    def ack(self, seq: int) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def pending_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def ensure_sequence_above(self, seq: int) -> None:
        """Continue numbering above what the control plane has applied (after a state reset).

        In a state file that has never been synchronised (new, e.g. after the old one was lost),
        nothing has been sent yet, so unsent events numbered at or below `seq` are renumbered
        above it instead of being taken for duplicates. After that, an unacked event at or
        below `seq` really was applied (its ack was lost) and keeps its number.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
                current = int(row[0]) if row else 0
                if current < seq:
                    if row:
                        self._conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'outbox'", (seq,))
                    else:
                        self._conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (seq,))
                synced = self._conn.execute("SELECT value FROM meta WHERE key = 'sequence_synced'").fetchone()
                if synced is not None and synced[0] == "0":
                    stale = self._conn.execute(
                        "SELECT seq, type, payload_json, occurred_at_ms FROM outbox WHERE seq <= ? ORDER BY seq",
                        (seq,),
                    ).fetchall()
                    for old_seq, type_, payload, occurred in stale:
                        self._conn.execute("DELETE FROM outbox WHERE seq = ?", (old_seq,))
                        self._conn.execute(
                            "INSERT INTO outbox (type, payload_json, occurred_at_ms) VALUES (?, ?, ?)",
                            (type_, payload, occurred),
                        )
                    self._conn.execute("UPDATE meta SET value = '1' WHERE key = 'sequence_synced'")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # ---- commands ----------------------------------------------------------------------

    def begin_command(self, command_id: str, type_: str, run_id: str) -> tuple[CommandRecord, bool]:
        """Record that `command_id` starts now. Returns (record, True) only for the first delivery."""
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO executed_command (id, type, run_id, state, started_at_ms) "
                "VALUES (?, ?, ?, 'running', ?)",
                (command_id, type_, run_id, int(time.time() * 1000)),
            )
            first = cur.rowcount == 1
            row = self._conn.execute(
                "SELECT id, state, run_id, result_json, error FROM executed_command WHERE id = ?",
                (command_id,),
            ).fetchone()
        return CommandRecord(*row), first

    def finish_command(self, command_id: str, *, ok: bool, result_json: str | None, error: str | None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE executed_command SET state = ?, result_json = ?, error = ?, finished_at_ms = ? WHERE id = ?",
                ("succeeded" if ok else "failed", result_json, error, int(time.time() * 1000), command_id),
            )

    def command(self, command_id: str) -> CommandRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT id, state, run_id, result_json, error FROM executed_command WHERE id = ?",
                (command_id,),
            ).fetchone()
        return CommandRecord(*row) if row else None
