"""Materialization: a feature set's source rows in a time range -> the offline store (partitions
replaced whole) and the latest value per key -> the online store.

Incremental by default (from the stored watermark to now); a backfill passes `start`/`end`. For
a set with a created timestamp, an incremental run also rebuilds the days of rows that arrived
late (created since the watermark, event time before it). Runs
over overlapping ranges never duplicate: every partition the range touches is rebuilt from the
rows outside the range that it already held plus the source's rows inside it. Local Parquet files
that already hold exactly the canonical rows, all inside the range, are adopted byte for byte
instead of being decoded and written again (`adopt.py`). Memory is bounded
by DuckDB's cap (it spills to disk) and by the online write batch size.
"""

from __future__ import annotations

import fcntl
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from data_plane_agent.features import pit_index, pit_memory
from data_plane_agent.features.adopt import adopt_source_files, partition_span
from data_plane_agent.features.duck import ident, open_duckdb, quote_list, ts_literal
from data_plane_agent.features.offline import OfflineStore
from data_plane_agent.features.online import OnlineStore, OnlineTable, entity_key_sql
from data_plane_agent.features.pit_index import PitIndex, PitIndexCache, read_rows
from data_plane_agent.features.registry import FeatureRegistry
from data_plane_agent.storage import LocalObjectStore
from mallard.features import FeatureDefinitionError, FeatureSet
from mallard.features.validate import check_columns, feature_rows_sql, register_transformed
from shared.errors import InvalidInput

ProgressFn = Callable[[str, int, int | None], None]
ONLINE_BATCH = 50_000


@dataclass(frozen=True)
class MaterializationResult:
    """What one run did (metadata only: counts and times)."""

    name: str
    version: int
    start: datetime | None
    end: datetime
    source_rows: int
    online_rows: int
    partitions: int
    watermark: datetime | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "start": None if self.start is None else self.start.isoformat(),
            "end": self.end.isoformat(),
            "source_rows": self.source_rows,
            "online_rows": self.online_rows,
            "partitions": self.partitions,
            "watermark": None if self.watermark is None else self.watermark.isoformat(),
            "seconds": round(self.seconds, 3),
        }


def online_table(tenant: str, project: str, fs: Any) -> OnlineTable:
    """The online namespace of a feature set version."""
    return OnlineTable(tenant, project, fs.name, fs.version, dict(fs.entity.keys), dict(fs.feature_types), fs.ttl)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _days(start: datetime | None, end: datetime, existing: set[str]) -> set[str]:
    """Existing partitions (days, or spans of adopted files) that overlap [start, end)."""
    out = set()
    for label in existing:
        begin, finish = partition_span(label)
        if (start is None or finish > start) and begin < end:
            out.add(label)
    return out


class Materializer:
    """Runs materializations for one tenant; see the module docstring."""

    def __init__(
        self,
        offline: OfflineStore,
        online: OnlineStore,
        registry: FeatureRegistry,
        work_dir: Path,
        *,
        memory_limit: str = "2GB",
        threads: int | None = None,
        indexes: PitIndexCache | None = None,
    ) -> None:
        self.indexes = indexes
        self.offline = offline
        self.online = online
        self.registry = registry
        self.work_dir = work_dir
        self.memory_limit = memory_limit
        self.threads = threads

    def run(
        self,
        project: str,
        fs: FeatureSet,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        progress: ProgressFn | None = None,
    ) -> MaterializationResult:
        """Materialize [start, end) (start None: from the watermark; end None: now). Runs of the same
        feature set version wait for each other (a file lock, so across processes too)."""
        with self._exclusive(project, fs):
            return self._run(project, fs, start=start, end=end, progress=progress)

    @contextmanager
    def _exclusive(self, project: str, fs: FeatureSet) -> Iterator[None]:
        path = self.work_dir / "locks" / f"{project}.{fs.name}.v{fs.version}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _run(
        self,
        project: str,
        fs: FeatureSet,
        *,
        start: datetime | None,
        end: datetime | None,
        progress: ProgressFn | None,
    ) -> MaterializationResult:
        began = time.monotonic()
        report = progress or (lambda phase, done, total: None)
        state = self.registry.state(project, fs.name, fs.version)
        incremental = start is None
        start = _utc(start) if start is not None else state.watermark
        end = _utc(end) or datetime.now(UTC)
        if start is not None and start >= end:
            raise InvalidInput(f"start ({start.isoformat()}) must be before end ({end.isoformat()})", field="start")
        run_dir = self.work_dir / f"run-{uuid.uuid4().hex}"
        staging = run_dir / "staging"
        con = open_duckdb(run_dir / "spill", memory_limit=self.memory_limit, threads=self.threads)
        try:
            report("reading source", 0, None)
            try:
                check_columns(fs, register_transformed(con, fs))
            except FeatureDefinitionError as exc:
                raise InvalidInput(exc.message, field=exc.field) from exc
            in_range = f"event_timestamp < {ts_literal(end)}"
            if start is not None:
                in_range = f"event_timestamp >= {ts_literal(start)} AND {in_range}"
            existing = self.registry.manifest(project, fs.name, fs.version)
            touched = _days(start, end, set(existing))
            late = self._late_days(con, fs, start, end) if incremental else []
            if late:
                # Rows that became known since the watermark but happened before it: rebuild their days.
                days = ", ".join(f"DATE '{d}'" for d in late)
                in_range = f"(({in_range}) OR CAST(event_timestamp AS DATE) IN ({days}))"
                touched |= set(late) & set(existing)
            adopted = None if touched or late else adopt_source_files(fs, start, end, staging)
            if adopted is not None:
                source_rows = adopted
            else:
                source_rows = self._copy_source(con, project, fs, existing, touched, in_range, staging)
            report("reading source", source_rows, source_rows)
            # Adopted files hold only rows inside the range: for a set keyed by one int, their join
            # index also gives the latest row per key, so the online write needs no query.
            staged = self._staged_index(fs, staging) if adopted is not None else None
            if not fs.online:
                written = 0
            elif staged is not None:
                written = self._write_online_from_index(project, fs, staged, report)
            else:
                written = self._write_online(con, project, fs, staging, in_range, end, report)
            new_days = {p.name[len("date=") :]: sorted(p.glob("*.parquet")) for p in staging.glob("date=*")}
            all_days = sorted(set(new_days) | touched)
            counts = self._counts(con, new_days)
            uploaded: dict[str, list[str]] = {}
            for i, day in enumerate(all_days):
                uploaded[day] = self.offline.upload(project, fs.name, fs.version, day, new_days.get(day, []))
                report("writing offline store", i + 1, len(all_days))
            watermark = state.watermark
            if incremental or watermark is None or start is None or start <= watermark:
                watermark = max(end, watermark) if watermark is not None else end
            self.registry.record_run(
                project,
                fs.name,
                fs.version,
                watermark=watermark,
                partitions={d: (counts.get(d, 0), uploaded[d]) for d in all_days},
            )
            self._collect_garbage(project, fs)
            if staged is not None:
                self._keep_index(project, fs, staged)
        finally:
            con.close()
            shutil.rmtree(run_dir, ignore_errors=True)
        return MaterializationResult(
            fs.name, fs.version, start, end, source_rows, written, len(all_days), watermark, time.monotonic() - began
        )

    def _copy_source(
        self,
        con: Any,
        project: str,
        fs: FeatureSet,
        existing: dict[str, list[str]],
        touched: set[str],
        in_range: str,
        staging: Path,
    ) -> int:
        """Write the source's rows in range, plus the rows outside it that the touched partitions
        already held, as new date partitions under `staging`; returns the source rows written."""
        kept_files = self.offline.local_files(
            project, fs.name, fs.version, [k for d in sorted(touched) for k in existing[d]]
        )
        union = f"SELECT * FROM ({feature_rows_sql(fs)}) WHERE {in_range}"
        kept_rows = 0
        if kept_files:
            kept_scan = f"read_parquet({quote_list(kept_files)}, hive_partitioning = false)"
            kept = f"SELECT * FROM {kept_scan} WHERE NOT ({in_range})"
            kept_rows = int(con.execute(f"SELECT count(*) FROM ({kept})").fetchall()[0][0])
            union = f"{union} UNION ALL BY NAME {kept}"
        copied = con.execute(
            f"COPY (SELECT *, CAST(CAST(event_timestamp AS DATE) AS VARCHAR) AS date FROM ({union})) "
            f"TO '{staging.as_posix()}' (FORMAT parquet, PARTITION_BY (date), FILENAME_PATTERN 'part-{{uuid}}', "
            "DICTIONARY_SIZE_LIMIT 1)"
        ).fetchall()[0]
        return int(copied[0]) - kept_rows if copied else 0

    def _staged_index(self, fs: FeatureSet, staging: Path) -> tuple[list[Path], PitIndex] | None:
        if self.indexes is None or not pit_memory.eligible(fs):
            return None
        files = sorted(staging.rglob("*.parquet"))
        index = pit_index.build([str(p) for p in files], next(iter(fs.entity.keys)))
        return None if index is None else (files, index)

    def _write_online_from_index(
        self, project: str, fs: FeatureSet, staged: tuple[list[Path], PitIndex], report: ProgressFn
    ) -> int:
        """The latest row per key, from the index (same rows as `_write_online`'s query: every staged
        row is in range and the set has no created timestamp), in key order."""
        files, index = staged
        keys, event_us, rows = index.latest()
        if len(rows) == 0:
            return 0
        names = [f.name for f in fs.features]
        values, sorter = read_rows([str(p) for p in files], index, rows, names)
        entity_key = pa.array(keys[sorter]).cast(pa.string())
        columns: dict[str, pa.Array] = {
            "entity_key": entity_key,
            "event_ts": pa.array(event_us[sorter]),
            "created_ts": pa.nulls(len(rows), pa.int64()),
        }
        for feature in fs.features:
            column = values.column(feature.name).combine_chunks()
            columns[feature.name] = column.cast(pa.int64()) if feature.type == "timestamp" else column
        # Key (string) order, as the query gives it: the SQLite B-tree then fills page by page.
        table = pa.table(columns)
        table = table.take(pc.sort_indices(entity_key))
        target = online_table(self.offline.tenant, project, fs)
        written = 0
        for start in range(0, table.num_rows, ONLINE_BATCH):
            written += self.online.write_batch(target, table.slice(start, ONLINE_BATCH))
            report("writing online store", written, None)
        return written

    def files(self, project: str, fs: FeatureSet) -> list[str]:
        """Local paths of the set version's offline parts, in manifest order (fetched if remote)."""
        return self.offline.local_files(
            project, fs.name, fs.version, self.registry.part_keys(project, fs.name, fs.version)
        )

    def _keep_index(self, project: str, fs: FeatureSet, staged: tuple[list[Path], PitIndex]) -> None:
        """Save the staged files' index for the set version when the manifest is exactly those files
        (parts keep their staged names), so it is not built again for the first retrieval."""
        files, index = staged
        if self.indexes is None or not isinstance(self.offline.store, LocalObjectStore):
            return
        final = self.files(project, fs)
        if [Path(p).name for p in final] == [p.name for p in files]:
            self.indexes.put(pit_index.owner(project, fs.name, fs.version), final, next(iter(fs.entity.keys)), index)

    def _late_days(self, con: Any, fs: FeatureSet, start: datetime | None, end: datetime) -> list[str]:
        """Event dates (before `start`) of rows created in [start, end): late arrivals an incremental run must add."""
        if start is None or not fs.created_timestamp:
            return []
        rows = con.execute(
            f"SELECT DISTINCT CAST(CAST(event_timestamp AS DATE) AS VARCHAR) FROM ({feature_rows_sql(fs)}) "
            f"WHERE created_timestamp >= {ts_literal(start)} AND created_timestamp < {ts_literal(end)} "
            f"AND event_timestamp < {ts_literal(start)}"
        ).fetchall()
        return sorted(str(r[0]) for r in rows)

    def _collect_garbage(self, project: str, fs: FeatureSet) -> None:
        """Delete parts the manifest no longer references: those this run replaced, and any left by an
        interrupted run (runs of one set are serialised, so none is in flight)."""
        referenced = self.registry.part_keys(project, fs.name, fs.version)
        keep = set(referenced)
        self.offline.delete([k for k in self.offline.stored_keys(project, fs.name, fs.version) if k not in keep])
        self.offline.prune_cache(project, fs.name, fs.version, referenced)

    def _counts(self, con: Any, days: dict[str, list[Path]]) -> dict[str, int]:
        files = [str(p) for paths in days.values() for p in paths]
        if not files:
            return {}
        rows = con.execute(
            f"SELECT file_name, sum(num_rows) FROM parquet_file_metadata({quote_list(files)}) GROUP BY file_name"
        ).fetchall()
        out: dict[str, int] = {}
        for file_name, count in rows:
            day = Path(file_name).parent.name[len("date=") :]
            out[day] = out.get(day, 0) + int(count)
        return out

    def _write_online(
        self, con: Any, project: str, fs: FeatureSet, staging: Path, in_range: str, end: datetime, report: ProgressFn
    ) -> int:
        files = [str(p) for p in staging.rglob("*.parquet")]
        if not files:
            return 0
        table = online_table(self.offline.tenant, project, fs)
        keys = ", ".join(ident(k) for k in fs.entity.keys)
        order = "event_timestamp DESC"
        known = ""
        if fs.created_timestamp:
            # Ties on event time go to the later created time; a row without one counts as oldest,
            # as the online store's own upsert rule has it.
            order += ", created_timestamp DESC NULLS LAST"
            known = f" AND (created_timestamp IS NULL OR created_timestamp <= {ts_literal(end)})"
        values = ", ".join(
            f"epoch_us({ident(f.name)}) AS {ident(f.name)}" if f.type == "timestamp" else ident(f.name)
            for f in fs.features
        )
        created = "epoch_us(created_timestamp)" if fs.created_timestamp else "NULL::BIGINT"
        # The latest row per key (QUALIFY over a window: about twice as fast as arg_max of a struct),
        # in key order: the SQLite store's B-tree (keyed by entity_key) then fills page by page
        # instead of at random pages, about half the write time for a fresh table.
        latest = (
            f"SELECT {entity_key_sql(fs.entity.keys)} AS entity_key, epoch_us(event_timestamp) AS event_ts, "
            f"{created} AS created_ts, {values} "
            f"FROM read_parquet({quote_list(files)}, hive_partitioning = false) WHERE {in_range}{known} "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1 ORDER BY entity_key"
        )
        reader = con.sql(latest).to_arrow_reader(ONLINE_BATCH)
        written = 0
        for batch in reader:
            written += self.online.write_batch(table, pa.Table.from_batches([batch]))
            report("writing online store", written, None)
        return written
