"""DuckDB connections for the heavy feature-store work: UTC, a memory cap and a spill directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mallard.features.validate import connect


def open_duckdb(
    spill_dir: Path, *, memory_limit: str = "2GB", threads: int | None = None, keep_order: bool = False
) -> duckdb.DuckDBPyConnection:
    """A connection that spills to `spill_dir` instead of exceeding `memory_limit` (bounded memory).
    `keep_order`: scans keep file order (needed to number CSV entity rows as they appear)."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    con = connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{spill_dir.as_posix()}'")
    con.execute(f"SET preserve_insertion_order = {'true' if keep_order else 'false'}")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def ts_literal(value: datetime) -> str:
    """A TIMESTAMPTZ literal for `value` (naive datetimes are UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return f"TIMESTAMPTZ '{value.astimezone(UTC).isoformat()}'"


def quote_list(paths: list[str]) -> str:
    """A DuckDB list literal of file paths."""
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
