"""Request and answer tables as JSON text, many at once (the lake's `inputs_json` / `outputs_json`).

The serving path hands the lake Arrow tables and never serialises rows itself: the JSON is made
off the event loop, when the flusher turns recorded predictions into Parquet rows. Tables of one
schema are concatenated and DuckDB's `to_json` renders every row in C++ (without the GIL), with
`[` before each table's first row and `]` after its last, so the text of a table's rows is its
JSON array: the result shares DuckDB's buffer, with one offset per table. A group DuckDB cannot
render (a type it does not read, duplicate column names) falls back to Python's `json`, so every
table gets its JSON: compact, values as `json.dumps` writes them (NaN as `NaN`), timestamps and
other non-JSON values as text.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

log = logging.getLogger("mallard.agent.lake")

_duckdb: duckdb.DuckDBPyConnection | None = None
_duckdb_lock = threading.Lock()  # one rendering at a time on the shared in-memory connection
_ROWS_SQL = (
    "SELECT concat(CASE WHEN f THEN '[' ELSE '' END, CAST(to_json(r) AS VARCHAR), CASE WHEN l THEN ']' ELSE ',' END) "
    "AS j FROM lake_rows"
)


def json_arrays(values: Sequence[pa.Table | str | None]) -> pa.Array:
    """One JSON array of records per table (a string given is taken as JSON already; None stays null)."""
    groups: list[tuple[pa.Schema, list[int]]] = []
    texts: list[str | None] = []
    text_at: list[int] = []
    for i, value in enumerate(values):
        if isinstance(value, pa.Table):
            for schema, members in groups:
                if value.schema is schema or value.schema.equals(schema):
                    members.append(i)
                    break
            else:
                groups.append((value.schema, [i]))
        else:
            texts.append(value)
            text_at.append(i)
    pieces: list[pa.Array] = []
    order: list[int] = []
    for _, members in groups:
        pieces.append(_render([values[i] for i in members]))  # type: ignore[misc]
        order.extend(members)
    if texts:
        pieces.append(pa.array(texts, pa.string()))
        order.extend(text_at)
    if not pieces:
        return pa.array([], pa.string())
    rendered = pa.concat_arrays(pieces) if len(pieces) > 1 else pieces[0]
    if order == list(range(len(order))):
        return rendered
    position = np.empty(len(order), np.int64)
    position[np.asarray(order, np.int64)] = np.arange(len(order), dtype=np.int64)
    return rendered.take(pa.array(position))


def ipc_json(streams: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The JSON arrays of records of Arrow IPC streams (the lake files' `inputs_arrow` /
    `outputs_arrow`); null stays null. The query layer's `_lake_json()` SQL function."""
    from mallard.serving.wire import decode_table

    values = streams.to_pylist()
    tables: list[pa.Table | None] = [None if v is None else decode_table(v) for v in values]
    return json_arrays(tables)


def rows_json(table: pa.Table) -> str:
    """The rows of one table as a JSON array of objects, in Python (the fallback renderer)."""
    names = table.column_names
    columns = [column.to_pylist() for column in table.columns]
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    return json.dumps(rows, default=str, separators=(",", ":"))


def _render(tables: list[pa.Table]) -> pa.Array:
    """The JSON arrays of tables that share one schema."""
    try:
        return _render_duckdb(tables)
    except Exception as exc:  # any failure has the Python renderer behind it
        log.debug("lake: rendering %d tables with DuckDB failed (%s); using Python", len(tables), exc)
        return pa.array([rows_json(t) for t in tables], pa.string())


def _render_duckdb(tables: list[pa.Table]) -> pa.Array:
    counts = np.fromiter((t.num_rows for t in tables), np.int64, len(tables))
    filled = np.flatnonzero(counts)
    if not len(filled):
        return pa.array(["[]"] * len(tables), pa.string())
    combined = pa.concat_tables(tables if len(filled) == len(tables) else [tables[i] for i in filled])
    combined = combined.combine_chunks()
    if combined.num_columns == 0:
        raise ValueError("a table without columns")
    ends = np.cumsum(counts[filled])
    starts = ends - counts[filled]
    first = np.zeros(int(ends[-1]), np.bool_)
    last = np.zeros(int(ends[-1]), np.bool_)
    first[starts] = True
    last[ends - 1] = True
    struct = pa.StructArray.from_arrays([c.chunk(0) for c in combined.columns], fields=list(combined.schema))
    # Each row's JSON object, with "[" before a table's first row and "]" (else ",") after its last:
    # the text of consecutive rows is then each table's JSON array, cut at its first row's offset.
    text = _row_texts(pa.table({"r": struct, "f": first, "l": last}))
    wide = pa.types.is_large_string(text.type)
    kind = np.int64 if wide else np.int32
    row_offsets = np.frombuffer(text.buffers()[1], kind, len(text) + 1, text.offset * np.dtype(kind).itemsize)
    offsets = np.append(row_offsets[starts], row_offsets[-1]).astype(kind)
    array_type = pa.LargeStringArray if wide else pa.StringArray
    rendered = array_type.from_buffers(len(filled), pa.py_buffer(offsets), text.buffers()[2])
    if wide:
        rendered = rendered.cast(pa.string())
    if len(filled) == len(tables):
        return rendered
    index = np.full(len(tables), len(filled), np.int64)  # empty tables take the "[]" after the others
    index[filled] = np.arange(len(filled))
    return pa.concat_arrays([rendered, pa.array(["[]"], pa.string())]).take(pa.array(index))


def _row_texts(rows: pa.Table) -> pa.Array:
    global _duckdb
    with _duckdb_lock:
        if _duckdb is None:
            _duckdb = duckdb.connect(":memory:", config={"threads": 1})
        _duckdb.register("lake_rows", rows)
        try:
            result = _duckdb.sql(_ROWS_SQL).to_arrow_table()
        finally:
            _duckdb.unregister("lake_rows")
    return result.column(0).combine_chunks()
