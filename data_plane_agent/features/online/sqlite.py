"""The embedded online store: one SQLite table per feature set version, keyed by the entity key."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_plane_agent.features.online.base import OnlineStore, OnlineTable, decode, expiry_cutoff

_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "str": "TEXT", "bool": "INTEGER", "timestamp": "INTEGER"}
_BATCH = 20_000


def _timestamp(raw: Any) -> Any:
    return decode("timestamp", raw)


# Stored value -> Python value per feature type (`decode`, specialised; None is handled by the caller).
_CONVERTERS: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": lambda raw: raw in (1, True, b"1", "1"),
    "timestamp": _timestamp,
    "str": lambda raw: raw.decode() if isinstance(raw, bytes) else str(raw),
}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteOnlineStore(OnlineStore):
    """Values in a SQLite file (WAL). A read of many keys is one query (`IN (SELECT value FROM json_each(?))`);
    writes are bulk upserts that keep the newer row."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS mallard_online_tables "
            "(namespace TEXT PRIMARY KEY, table_name TEXT, columns TEXT)"
        )
        self._tables: dict[str, tuple[str, set[str]]] = {}
        self._read_sql: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}  # (table, features) -> SELECTs

    def _table(self, table: OnlineTable, create: bool) -> str | None:
        known = self._tables.get(table.namespace)
        if known is not None and set(table.features) <= known[1]:
            return known[0]
        row = self._db.execute(
            "SELECT table_name, columns FROM mallard_online_tables WHERE namespace = ?", (table.namespace,)
        ).fetchone()
        if row is None and not create:
            return None
        name = "fs_" + hashlib.sha256(table.namespace.encode()).hexdigest()[:24]
        columns: set[str] = set(json.loads(row[1])) if row else set()
        if row is None:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {name} (entity_key TEXT PRIMARY KEY, event_ts INTEGER, created_ts INTEGER)"
                " WITHOUT ROWID"
            )
        if create:
            # A compatible new version of the definition may add features: add their columns.
            for feature, type_name in table.features.items():
                if feature not in columns:
                    self._db.execute(f"ALTER TABLE {name} ADD COLUMN {_q(feature)} {_SQL_TYPES[type_name]}")
                    columns.add(feature)
            self._db.execute(
                "INSERT OR REPLACE INTO mallard_online_tables VALUES (?, ?, ?)",
                (table.namespace, name, json.dumps(sorted(columns))),
            )
        self._tables[table.namespace] = (name, columns)
        return name

    def write_batch(self, table: OnlineTable, rows: pa.Table) -> int:
        features = [f for f in table.features if f in rows.column_names]
        columns = ["entity_key", "event_ts", "created_ts", *features]
        data = [_python_column(rows, c, table.features.get(c)) for c in columns]
        placeholders = ", ".join("?" * len(columns))
        updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in columns[1:])
        with self._lock:
            name = self._table(table, create=True)
            sql = (
                f"INSERT INTO {name} ({', '.join(_q(c) for c in columns)}) VALUES ({placeholders}) "
                f"ON CONFLICT(entity_key) DO UPDATE SET {updates} WHERE excluded.event_ts > {name}.event_ts "
                f"OR (excluded.event_ts = {name}.event_ts "
                f"AND coalesce(excluded.created_ts, 0) >= coalesce({name}.created_ts, 0))"
            )
            self._db.execute("BEGIN")
            try:
                for start in range(0, rows.num_rows, _BATCH):
                    chunk = [c[start : start + _BATCH] for c in data]
                    self._db.executemany(sql, zip(*chunk, strict=True))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return rows.num_rows

    def read(
        self, table: OnlineTable, keys: Sequence[str], features: Sequence[str], *, now: datetime | None = None
    ) -> list[dict[str, Any] | None]:
        wanted = tuple(features)
        with self._lock:
            name = self._table(table, create=False)
            if name is None:
                return [None] * len(keys)
            statements = self._read_sql.get((name, wanted))
            if statements is None:
                select = f"SELECT entity_key, event_ts{''.join(', ' + _q(f) for f in wanted)} FROM {name} WHERE "
                # One key (the common single-entity lookup): no JSON array to build and parse.
                statements = (select + "entity_key = ?", select + "entity_key IN (SELECT value FROM json_each(?))")
                if len(self._read_sql) > 1024:
                    self._read_sql.clear()
                self._read_sql[(name, wanted)] = statements
            if len(keys) == 1:
                found = self._db.execute(statements[0], (keys[0],)).fetchall()
            else:
                found = self._db.execute(statements[1], (json.dumps(list(keys)),)).fetchall()
        by_key = {row[0]: row for row in found}
        converters = [_CONVERTERS[table.features[f]] for f in wanted]
        cutoff = expiry_cutoff(table, now)
        out: list[dict[str, Any] | None] = []
        for key in keys:
            row = by_key.get(key)
            if row is None or row[1] is None or row[1] < cutoff:
                out.append(None)
                continue
            values = {f: None if v is None else c(v) for f, c, v in zip(wanted, converters, row[2:], strict=True)}
            values["event_timestamp"] = _timestamp(row[1])
            out.append(values)
        return out

    def count_keys(self, table: OnlineTable) -> int:
        with self._lock:
            name = self._table(table, create=False)
            if name is None:
                return 0
            return int(self._db.execute(f"SELECT count(*) FROM {name}").fetchone()[0])

    def drop(self, table: OnlineTable) -> None:
        with self._lock:
            name = self._table(table, create=False)
            if name is not None:
                self._db.execute(f"DROP TABLE IF EXISTS {name}")
                self._db.execute("DELETE FROM mallard_online_tables WHERE namespace = ?", (table.namespace,))
            self._tables.pop(table.namespace, None)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _python_column(rows: pa.Table, column: str, type_name: str | None) -> list[Any]:
    if column not in rows.column_names:
        return [None] * rows.num_rows
    values = rows.column(column)
    if type_name == "bool":
        values = values.cast(pa.int8())
    if values.null_count == 0 and (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        return values.to_numpy().tolist()  # several times faster than Arrow's to_pylist, same Python values
    return values.to_pylist()
