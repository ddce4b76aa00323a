"""Adopting a Parquet source's files as offline parts, byte for byte.

When a batch source is local Parquet whose files already hold exactly the canonical rows (the
columns `feature_rows_sql` produces, with the same names and Arrow types, and no nulls in the
keys or the event time) and every row lies inside the materialized range, decoding them and
writing them again as dated partitions only costs time. Such files are copied as they are
(`shutil.copyfile`: the kernel copies, nothing is decoded) and together become one partition
spanning their event dates, labelled `FIRST..LAST` (`partition_span` reads both label forms).

Everything is proven from the Parquet footers alone (schema, and each row group's statistics for
the time range and the null counts); when anything cannot be proven — a transform, a remote or
Hive-partitioned source, another column name or type, missing statistics, a row outside the range
— the caller falls back to the usual copy into dated partitions. The copies' footers are read
back and must match the originals (a file rewritten in place during the copy is refused). A
later run whose range overlaps a span partition rewrites it into dated partitions like any other.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mallard.features import FeatureSet
from mallard.features.types import DUCKDB_TYPES

ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}
SPAN = ".."


def partition_span(label: str) -> tuple[datetime, datetime]:
    """[begin, end) of a partition label: `YYYY-MM-DD` (one day) or `YYYY-MM-DD..YYYY-MM-DD`."""
    first, _, last = label.partition(SPAN)
    begin = datetime.fromisoformat(first).replace(tzinfo=UTC)
    end = datetime.fromisoformat(last or first).replace(tzinfo=UTC) + timedelta(days=1)
    return begin, end


def _canonical_types(fs: FeatureSet) -> dict[str, pa.DataType] | None:
    if fs.timestamp != "event_timestamp" or fs.created_timestamp not in (None, "created_timestamp"):
        return None  # the source's columns would be renamed
    types = {k: ARROW_TYPES[DUCKDB_TYPES[t]] for k, t in fs.entity.keys.items()}
    types["event_timestamp"] = ARROW_TYPES["TIMESTAMPTZ"]
    if fs.created_timestamp:
        types["created_timestamp"] = ARROW_TYPES["TIMESTAMPTZ"]
    for feature in fs.features:
        types[feature.name] = ARROW_TYPES[DUCKDB_TYPES[feature.type]]
    return types


def _source_files(fs: FeatureSet) -> list[Path] | None:
    if fs.source.type != "parquet" or fs.transform_sql:
        return None
    path = Path(str(getattr(fs.source, "path", "")))
    if str(path).startswith("s3:") or not path.exists():
        return None
    if path.is_file():
        return [path]
    entries = list(path.iterdir())
    if any(entry.is_dir() or entry.name.startswith(".") for entry in entries):
        return None  # nested or Hive-partitioned (columns may live in directory names), or hidden files
    return sorted(entry for entry in entries if entry.suffix == ".parquet")


def _file_range(
    path: Path, types: dict[str, pa.DataType], not_null: list[str]
) -> tuple[datetime, datetime, int] | None:
    """(min, max) event time and row count of a file whose footer proves it canonical; else None."""
    with pq.ParquetFile(path) as handle:
        schema = handle.schema_arrow
        if len(schema.names) != len(types) or any(
            schema.get_field_index(name) < 0 or not schema.field(name).type.equals(t) for name, t in types.items()
        ):
            return None
        meta = handle.metadata
        positions = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        low: datetime | None = None
        high: datetime | None = None
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            if group.num_rows == 0:
                continue
            for name in not_null:
                stats = group.column(positions[name]).statistics
                if stats is None or not stats.has_null_count or stats.null_count != 0:
                    return None
            stats = group.column(positions["event_timestamp"]).statistics
            if stats is None or not stats.has_min_max:
                return None
            first, last = _utc(stats.min), _utc(stats.max)
            low = first if low is None else min(low, first)
            high = last if high is None else max(high, last)
        if low is None or high is None:
            return None
        return low, high, meta.num_rows


def adopt_source_files(fs: FeatureSet, start: datetime | None, end: datetime, staging: Path) -> int | None:
    """Copy the source's files into `staging/date=<span>/` when they can be adopted (see the module
    docstring); returns the rows adopted, or None to fall back to the usual copy."""
    files = _source_files(fs)
    types = _canonical_types(fs)
    if not files or types is None:
        return None
    ranges = []
    for path in files:
        found = _file_range(path, types, ["event_timestamp", *fs.entity.keys])
        if found is None:
            return None
        ranges.append(found)
    low = min(r[0] for r in ranges)
    high = max(r[1] for r in ranges)
    if (start is not None and low < start) or high >= end:
        return None
    first, last = low.date(), high.date()
    label = first.isoformat() if first == last else f"{first.isoformat()}{SPAN}{last.isoformat()}"
    target_dir = staging / f"date={label}"
    target_dir.mkdir(parents=True, exist_ok=True)
    rows = 0
    for path, (_, _, count) in zip(files, ranges, strict=True):
        target = target_dir / f"part-{uuid.uuid4().hex}.parquet"
        shutil.copyfile(path, target)
        try:
            with pq.ParquetFile(target) as copied:
                intact = copied.metadata.num_rows == count and copied.schema_arrow.equals(pq.read_schema(path))
        except (OSError, pa.ArrowException):
            intact = False
        if not intact:
            shutil.rmtree(target_dir, ignore_errors=True)
            return None  # the file changed while it was copied: decode it the usual way instead
        rows += count
    return rows


def _utc(value: datetime) -> datetime:
    # The column's type is UTC-adjusted (checked), so a naive statistic is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
