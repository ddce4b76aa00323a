"""Point-in-time correct historical retrieval: one DuckDB ASOF JOIN per feature set.

For every entity row (keys + a timestamp T) and every requested feature set, the value is taken
from the feature row with the latest event time <= T that was already known at T (created
timestamp <= T when the set has one) — and only if that event time is within the set's TTL of T;
otherwise the features are null. Every entity row comes back exactly once, in input order, with
its own columns unchanged. DuckDB runs the join out of core (memory cap + spill directory) and
streams the result to a Parquet file, so entity sets larger than memory work.

The created-timestamp rule is folded into an ASOF-joinable "changelog": a feature row becomes
visible at max(event time, created time); at each visibility point the best row so far (latest
event time, then latest created time) is recorded; the ASOF join then picks the last changelog
point <= T. If that best row is outside the TTL, so is every other visible row, hence the nulls
are exact.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_plane_agent.features import pit_index, pit_memory
from data_plane_agent.features.duck import ident, quote_list
from data_plane_agent.features.pit_index import PitIndexCache
from mallard.features import FeatureSet
from mallard.features.types import DUCKDB_TYPES, accepts, is_timestamp
from shared.errors import InvalidInput

_ENTITY_VIEW = "__entities"
# Entity rows, and rows of one feature set, up to which the join runs in memory (numpy for sets
# keyed by one int, DuckDB over an in-memory entity table otherwise); above it, fully out of core.
MEMORY_ROWS = 20_000_000


@dataclass(frozen=True)
class FeatureRequest:
    """Features wanted from one feature set version, and the offline Parquet files that hold its rows."""

    feature_set: FeatureSet
    features: list[str]
    files: list[str]
    owner: str = ""  # names the set version's in-memory join index (`pit_index`); "" builds one per call


class PointInTimeJoin:
    """Historical retrieval over an open DuckDB connection (see the module docstring)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        memory_rows: int = MEMORY_ROWS,
        threads: int | None = None,
        indexes: PitIndexCache | None = None,
    ) -> None:
        self.con = con
        self.memory_rows = memory_rows
        self.indexes = indexes
        self.threads = threads or min(4, os.cpu_count() or 1)

    def run(
        self,
        entities: str | Path | pa.Table,
        requests: list[FeatureRequest],
        out_path: Path,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
    ) -> int:
        """Join and write `out_path` (Parquet); returns the number of rows written (= entity rows)."""
        if not requests:
            raise InvalidInput("no features requested", field="features")
        columns = self._register_entities(entities)
        self._check_entities(columns, requests, timestamp_column)
        names = self._output_names(columns, requests, full_feature_names)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if self._fits_in_memory(requests):
            return self._run_in_memory(columns, requests, timestamp_column, names, out_path)
        sql = self._query(requests, timestamp_column, names)
        try:
            row = self.con.execute(f"COPY ({sql}) TO '{out_path.as_posix()}' (FORMAT parquet)").fetchall()[0]
        except duckdb.ConversionException as exc:
            raise InvalidInput(
                f"entity column {timestamp_column!r} has values that are not timestamps: {exc}", field=timestamp_column
            ) from exc
        return int(row[0]) if row else 0

    def _register_entities(self, entities: str | Path | pa.Table) -> dict[str, str]:
        if isinstance(entities, pa.Table):
            numbered = entities.append_column("__row", pa.array(range(entities.num_rows), pa.int64()))
            self.con.register("__entities_arrow", numbered)
            source = "SELECT * FROM __entities_arrow"
        else:
            path = Path(entities)
            if not path.is_file():
                raise InvalidInput(f"entity file {str(path)!r} does not exist", field="entities")
            quoted = "'" + path.as_posix().replace("'", "''") + "'"
            if path.suffix.lower() == ".csv":
                source = f"SELECT *, row_number() OVER () AS __row FROM read_csv({quoted}, header = true)"
            else:
                source = (
                    f"SELECT * EXCLUDE (file_row_number), file_row_number AS __row "
                    f"FROM read_parquet({quoted}, file_row_number = true)"
                )
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {_ENTITY_VIEW} AS {source}")
            described = self.con.execute(f"DESCRIBE SELECT * FROM {_ENTITY_VIEW}").fetchall()
        except duckdb.Error as exc:
            raise InvalidInput(f"cannot read the entity rows: {exc}", field="entities") from exc
        return {str(r[0]): str(r[1]) for r in described if r[0] != "__row"}

    def _check_entities(self, columns: dict[str, str], requests: list[FeatureRequest], ts: str) -> None:
        available = ", ".join(sorted(columns))
        if ts not in columns:
            raise InvalidInput(f"the entity rows have no timestamp column {ts!r} (columns: {available})", field=ts)
        if not is_timestamp(columns[ts]) and not columns[ts].upper().startswith("VARCHAR"):
            raise InvalidInput(f"entity column {ts!r} must be a timestamp, not {columns[ts]}", field=ts)
        needed: dict[str, str] = {}
        for request in requests:
            for key, type_name in request.feature_set.entity.keys.items():
                if key not in columns:
                    raise InvalidInput(
                        f"feature set {request.feature_set.name!r} needs entity key column {key!r}, "
                        f"which the entity rows lack (columns: {available})",
                        field=key,
                    )
                if not accepts(type_name, columns[key]):
                    raise InvalidInput(f"entity key {key!r} must be {type_name}, not {columns[key]}", field=key)
                needed[key] = type_name
        checks = [f"count(*) FILTER (WHERE {ident(c)} IS NULL)" for c in [ts, *needed]]
        nulls = self.con.execute(f"SELECT {', '.join(checks)} FROM {_ENTITY_VIEW}").fetchall()[0]
        for column, count in zip([ts, *needed], nulls, strict=True):
            if count:
                raise InvalidInput(f"{count} entity rows have no value in {column!r}", field=column)

    def _output_names(self, columns: dict[str, str], requests: list[FeatureRequest], full: bool) -> list[list[str]]:
        taken = set(columns)
        out = []
        for request in requests:
            names = []
            for feature in request.features:
                name = f"{request.feature_set.name}__{feature}" if full else feature
                if name in taken:
                    raise InvalidInput(
                        f"output column {name!r} appears twice (entity column or another feature set); "
                        "ask for full feature names (set__feature)",
                        field="features",
                    )
                taken.add(name)
                names.append(name)
            out.append(names)
        return out

    def _fits_in_memory(self, requests: list[FeatureRequest]) -> bool:
        entity_rows = int(self.con.execute(f"SELECT count(*) FROM {_ENTITY_VIEW}").fetchall()[0][0])
        if entity_rows > self.memory_rows:
            return False
        for request in requests:
            if request.files:
                rows = sum(pq.ParquetFile(f).metadata.num_rows for f in request.files)
                if rows > self.memory_rows:
                    return False
        return True

    def _run_in_memory(
        self, columns: dict[str, str], requests: list[FeatureRequest], ts: str, names: list[list[str]], out_path: Path
    ) -> int:
        keys = {k: t for r in requests for k, t in r.feature_set.entity.keys.items()}
        casts = "".join(f", CAST({ident(k)} AS {DUCKDB_TYPES[t]}) AS {ident('__e_' + k)}" for k, t in keys.items())
        try:
            stamp = f"epoch_us(CAST({ident(ts)} AS TIMESTAMPTZ)) AS __ts_us"
            entities = self.con.sql(f"SELECT *, {stamp}{casts} FROM {_ENTITY_VIEW} ORDER BY __row").to_arrow_table()
        except duckdb.ConversionException as exc:
            raise InvalidInput(f"entity column {ts!r} has values that are not timestamps: {exc}", field=ts) from exc
        times = entities.column("__ts_us").to_numpy(zero_copy_only=False)
        narrow = pa.table(
            {"__row": pa.array(np.arange(entities.num_rows, dtype=np.int64))}
            | {c: entities.column(c) for c in dict.fromkeys([*keys, ts])}
        )

        def one(i: int) -> list[pa.Array] | None:
            request = requests[i]
            if not pit_memory.eligible(request.feature_set):
                return None
            key = next(iter(request.feature_set.entity.keys))
            entity_keys = entities.column("__e_" + key).to_numpy(zero_copy_only=False)
            if not request.files:
                index = None
            elif self.indexes is not None and request.owner:
                index = self.indexes.get(request.owner, request.files, key)
            else:
                index = pit_index.build(request.files, key)
            return pit_memory.join(request.feature_set, request.features, request.files, entity_keys, times, index)

        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            results = list(pool.map(one, range(len(requests))))
        out = entities.select(list(columns))
        self.con.register("__entities_narrow", narrow)
        for i, request in enumerate(requests):
            arrays = results[i]
            if arrays is None:
                sql = self._query([request], ts, [names[i]], relation="__entities_narrow", keep_entity=False)
                joined = self.con.sql(sql).to_arrow_table()
                arrays = [joined.column(n).combine_chunks() for n in names[i]]
            for name, array in zip(names[i], arrays, strict=True):
                out = out.append_column(name, array)
        pq.write_table(out, out_path, use_dictionary=False)
        return out.num_rows

    def _query(
        self,
        requests: list[FeatureRequest],
        ts: str,
        names: list[list[str]],
        *,
        relation: str = _ENTITY_VIEW,
        keep_entity: bool = True,
    ) -> str:
        ctes = []
        key_casts: dict[str, str] = {}
        for request in requests:
            for key, type_name in request.feature_set.entity.keys.items():
                key_casts[key] = f"CAST({ident(key)} AS {DUCKDB_TYPES[type_name]}) AS {ident('__e_' + key)}"
        casts = ", ".join(key_casts.values())
        ctes.append(f"e AS (SELECT *, CAST({ident(ts)} AS TIMESTAMPTZ) AS __ts, {casts} FROM {relation})")
        joins = []
        selects = []
        if keep_entity:
            selects.append("e.* EXCLUDE (__ts, __row" + "".join(f", {ident('__e_' + k)}" for k in key_casts) + ")")
        for i, request in enumerate(requests):
            fs = request.feature_set
            ctes.append(f"f{i} AS ({self._feature_rows(i, request)})")
            on = " AND ".join(f"e.{ident('__e_' + k)} = f{i}.{ident(f'__k{i}_{k}')}" for k in fs.entity.keys)
            joins.append(f"ASOF LEFT JOIN f{i} ON {on} AND e.__ts >= f{i}.__vis")
            fresh = "TRUE"
            if fs.ttl is not None:
                fresh = f"f{i}.__et >= e.__ts - to_microseconds({int(fs.ttl.total_seconds() * 1_000_000)})"
            for j, name in enumerate(names[i]):
                selects.append(f"CASE WHEN {fresh} THEN f{i}.{ident(f'__f{i}_{j}')} END AS {ident(name)}")
        return f"WITH {', '.join(ctes)} SELECT {', '.join(selects)} FROM e {' '.join(joins)} ORDER BY e.__row"

    def _feature_rows(self, i: int, request: FeatureRequest) -> str:
        fs = request.feature_set
        if not request.files:
            # Nothing materialized: an empty relation of the right shape, so every row gets nulls.
            keys = ", ".join(f"NULL::{DUCKDB_TYPES[t]} AS {ident(f'__k{i}_{k}')}" for k, t in fs.entity.keys.items())
            feats = ", ".join(
                f"NULL::{DUCKDB_TYPES[fs.feature_types[f]]} AS {ident(f'__f{i}_{j}')}"
                for j, f in enumerate(request.features)
            )
            return f"SELECT {keys}, NULL::TIMESTAMPTZ AS __vis, NULL::TIMESTAMPTZ AS __et, {feats} LIMIT 0"
        files = f"read_parquet({quote_list(request.files)}, hive_partitioning = false, union_by_name = true)"
        key_list = ", ".join(f"{ident(k)} AS {ident(f'__k{i}_{k}')}" for k in fs.entity.keys)
        if not fs.created_timestamp:
            feat_list = ", ".join(f"{ident(f)} AS {ident(f'__f{i}_{j}')}" for j, f in enumerate(request.features))
            return f"SELECT {key_list}, event_timestamp AS __vis, event_timestamp AS __et, {feat_list} FROM {files}"
        key_names = ", ".join(ident(f"__k{i}_{k}") for k in fs.entity.keys)
        packed = ", ".join(
            [
                "__et := event_timestamp",
                *(f"{ident(f'__f{i}_{j}')} := {ident(f)}" for j, f in enumerate(request.features)),
            ]
        )
        known = "coalesce(created_timestamp, event_timestamp)"
        raw = (
            f"SELECT {key_list}, greatest(event_timestamp, {known}) AS __vis, struct_pack({packed}) AS __row, "
            f"struct_pack(e := event_timestamp, c := {known}) AS __rank FROM {files}"
        )
        best = (
            f"SELECT {key_names}, __vis, arg_max(__row, __rank) OVER (PARTITION BY {key_names} ORDER BY __vis "
            f"RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __best FROM ({raw})"
        )
        return f"SELECT {key_names}, __vis, unnest(any_value(__best)) FROM ({best}) GROUP BY {key_names}, __vis"
