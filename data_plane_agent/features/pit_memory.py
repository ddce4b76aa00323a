"""The in-memory point-in-time join for a feature set keyed by one int column (the common case).

Same result as the DuckDB ASOF JOIN (see `pit.py`), computed with numpy: feature rows are
ordered by a composite (key, event time) int64, each entity row's composite is binary-searched
in it, and the hit is kept only if its key matches and it is within the TTL. Used when the
entity rows and one feature set's rows fit comfortably in memory; sets with a created timestamp,
composite or string keys, or a key/time range too wide for int64 go through DuckDB.
"""

from __future__ import annotations

import numpy as np
import pandas  # noqa: F401  (pyarrow imports it on its first numpy conversion: pay once at agent start, not per request)
import pyarrow as pa
import pyarrow.parquet as pq

from mallard.features import FeatureSet
from mallard.features.types import DUCKDB_TYPES

_ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}


def eligible(fs: FeatureSet) -> bool:
    """Whether this join handles the set (one int key, no created timestamp)."""
    return fs.created_timestamp is None and list(fs.entity.keys.values()) == ["int"]


def _read(path: str, columns: list[str]) -> pa.Table:
    # ParquetFile, not pq.read_table: the latter goes through pyarrow.dataset, whose first use costs
    # ~0.2 s CPU, inside the first historical request of a process.
    with pq.ParquetFile(path) as handle:
        return handle.read(columns=columns, use_threads=False)


def join(
    fs: FeatureSet, features: list[str], files: list[str], keys: np.ndarray, times_us: np.ndarray
) -> list[pa.Array] | None:
    """Feature columns (one array per feature, aligned with the entity rows), or None when the
    key/time range does not fit the int64 composite (the caller falls back to DuckDB).

    Two passes over the files: the keys and event times of every row first (to find each entity
    row's source row), then the features one file at a time, keeping only the rows some entity
    row takes. Only one file's feature columns are in memory at once, so a large set costs a
    fraction of the memory (and of the first-touch page faults) of reading it whole."""
    key = next(iter(fs.entity.keys))
    n = len(keys)
    types = [_ARROW_TYPES[DUCKDB_TYPES[fs.feature_types[f]]] for f in features]
    nulls = [pa.nulls(n, t) for t in types]
    if not files or n == 0:
        return nulls
    parts = [_read(f, [key, "event_timestamp"]) for f in files]
    sizes = np.array([p.num_rows for p in parts], dtype=np.int64)
    if int(sizes.sum()) == 0:
        return nulls
    fk = np.concatenate([p.column(key).to_numpy(zero_copy_only=False).astype(np.int64, copy=False) for p in parts])
    ft = np.concatenate([p.column("event_timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False) for p in parts])
    del parts
    kmin, kmax = int(fk.min()), int(fk.max())
    tmin = min(int(ft.min()), int(times_us.min()))
    tspan = max(int(ft.max()), int(times_us.max())) - tmin + 1
    if (kmax - kmin + 1) * tspan >= 2**62:
        return None
    composite = (fk - kmin) * tspan + (ft - tmin)
    order = np.argsort(composite)  # ties (same key and time) may resolve to any of the tied rows
    ordered = composite[order]
    in_range = (keys >= kmin) & (keys <= kmax)
    probe = (np.where(in_range, keys, kmin) - kmin) * tspan + (times_us - tmin)
    hit = np.searchsorted(ordered, probe, side="right") - 1
    source = order[np.maximum(hit, 0)]
    found = in_range & (hit >= 0) & (fk[source] == keys)
    if fs.ttl is not None:
        found &= ft[source] >= times_us - int(fs.ttl.total_seconds() * 1_000_000)
    del composite, order, ordered, fk, ft
    rows = np.flatnonzero(found)  # entity rows that get values
    if len(rows) == 0:
        return nulls
    wanted = source[rows]
    by_file = np.searchsorted(np.cumsum(sizes), wanted, side="right")  # the file holding each wanted row
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    grouping = np.argsort(by_file, kind="stable")
    taken: list[pa.Table] = []
    positions: list[np.ndarray] = []
    bounds = np.searchsorted(by_file[grouping], np.arange(len(files) + 1))
    for i, path in enumerate(files):
        picked = grouping[bounds[i] : bounds[i + 1]]
        if len(picked) == 0:
            continue
        table = _read(path, features)
        taken.append(table.take(pa.array(wanted[picked] - starts[i])))
        positions.append(rows[picked])
    combined = pa.concat_tables(taken, promote_options="permissive")
    gather = np.full(n, -1, dtype=np.int64)
    gather[np.concatenate(positions)] = np.arange(combined.num_rows, dtype=np.int64)
    index = pa.array(gather, mask=gather < 0)  # a null index takes a null: no value in the TTL
    out = []
    for feature, arrow_type in zip(features, types, strict=True):
        column = combined.column(feature).combine_chunks()
        if column.type != arrow_type:
            column = column.cast(arrow_type)
        out.append(column.take(index))
    return out
