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
import pyarrow.compute as pc
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


def _read(files: list[str], columns: list[str]) -> pa.Table:
    tables = [pq.read_table(f, columns=columns) for f in files]
    return pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})


def join(
    fs: FeatureSet, features: list[str], files: list[str], keys: np.ndarray, times_us: np.ndarray
) -> list[pa.Array] | None:
    """Feature columns (one array per feature, aligned with the entity rows), or None when the
    key/time range does not fit the int64 composite (the caller falls back to DuckDB)."""
    key = next(iter(fs.entity.keys))
    n = len(keys)
    nulls = [pa.nulls(n, _ARROW_TYPES[DUCKDB_TYPES[fs.feature_types[f]]]) for f in features]
    rows = _read(files, [key, "event_timestamp", *features]) if files else None
    if rows is None or rows.num_rows == 0 or n == 0:
        return nulls
    fk = rows.column(key).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    ft = rows.column("event_timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False)
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
    taken = rows.select(features).take(pa.array(source))
    mask = pa.array(found)
    out = []
    for feature, empty in zip(features, nulls, strict=True):
        column = taken.column(feature).combine_chunks().cast(empty.type)
        out.append(pc.if_else(mask, column, pa.scalar(None, empty.type)))
    return out
