"""The in-memory point-in-time join for a feature set keyed by one int column (the common case).

Same result as the DuckDB ASOF JOIN (see `pit.py`), computed with numpy: feature rows are
ordered by a composite (key, event time) int64 (`pit_index`, built once per materialization),
each entity row's composite is binary-searched in it, and the hit is kept only if its key
matches and it is within the TTL. Used when the
entity rows and one feature set's rows fit comfortably in memory; sets with a created timestamp,
composite or string keys, or a key/time range too wide for int64 go through DuckDB.
"""

from __future__ import annotations

import numpy as np
import pandas  # noqa: F401  (pyarrow imports it on its first numpy conversion: pay once at agent start, not per request)
import pyarrow as pa

from data_plane_agent.features.adopt import ARROW_TYPES
from data_plane_agent.features.pit_index import PitIndex, read_rows
from mallard.features import FeatureSet
from mallard.features.types import DUCKDB_TYPES

# pyarrow builds its compute functions on the first `take` (~0.15 s): pay it at agent start, not
# inside the first historical retrieval.
pa.array([0]).take(pa.array([0]))


def eligible(fs: FeatureSet) -> bool:
    """Whether this join handles the set (one int key, no created timestamp)."""
    return fs.created_timestamp is None and list(fs.entity.keys.values()) == ["int"]


def join(
    fs: FeatureSet,
    features: list[str],
    files: list[str],
    keys: np.ndarray,
    times_us: np.ndarray,
    index: PitIndex | None,
) -> list[pa.Array] | None:
    """Feature columns (one array per feature, aligned with the entity rows), or None when there
    is no index (the key/time range does not fit the int64 composite: the caller uses DuckDB).

    The index (`pit_index`, built from `files`) names each entity row's feature row; the features
    are then read one row group at a time (`read_rows`)."""
    n = len(keys)
    types = [ARROW_TYPES[DUCKDB_TYPES[fs.feature_types[f]]] for f in features]
    nulls = [pa.nulls(n, t) for t in types]
    if not files or n == 0:
        return nulls
    if index is None:
        return None
    ttl = None if fs.ttl is None else int(fs.ttl.total_seconds() * 1_000_000)
    rows, wanted = index.lookup(keys, times_us, ttl)
    if len(rows) == 0:
        return nulls
    combined, sorter = read_rows(files, index, wanted, features)
    gather = np.full(n, -1, dtype=np.int64)
    gather[rows[sorter]] = np.arange(combined.num_rows, dtype=np.int64)
    index_array = pa.array(gather, mask=gather < 0)  # a null index takes a null: no value in the TTL
    out = []
    for feature, arrow_type in zip(features, types, strict=True):
        column = combined.column(feature).combine_chunks()
        if column.type != arrow_type:
            column = column.cast(arrow_type)
        out.append(column.take(index_array))
    return out
