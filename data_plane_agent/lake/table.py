"""The `predictions` table: its columns, and how records become Parquet partitions.

Columns (one row per answer of one model variation; shadow answers included):

| column          | type        | meaning                                                              |
|-----------------|-------------|----------------------------------------------------------------------|
| `model`         | VARCHAR     | model name the request addressed                                     |
| `deployment_id` | VARCHAR     | deployment that served it                                            |
| `variation`     | VARCHAR     | variation that answered ("default" unless split)                     |
| `build_id`      | VARCHAR     | build behind that variation                                          |
| `request_id`    | VARCHAR     | the request's id (`X-Request-Id`); live and shadow rows share it     |
| `timestamp`     | TIMESTAMP   | when the request arrived, UTC (millisecond precision)                |
| `latency_ms`    | DOUBLE      | time to answer, milliseconds                                         |
| `status`        | VARCHAR     | "ok" or an error code (INVALID_INPUT, TIMEOUT, MODEL_ERROR, ...)     |
| `shadow`        | BOOLEAN     | true for a mirrored variation's answer (never returned to the caller)|
| `rows`          | INTEGER     | rows in the request                                                  |
| `inputs_json`   | VARCHAR     | request rows, a JSON array of records                                |
| `outputs_json`  | VARCHAR     | answer rows, a JSON array of records (NULL on error)                 |
| `error`         | VARCHAR     | error message (NULL when ok)                                         |
| `date`          | VARCHAR     | partition: `YYYY-MM-DD` of `timestamp`                               |
| `hour`          | INTEGER     | partition: hour (0-23) of `timestamp`                                |

In the files, the request and answer tables are stored as they were, typed: `inputs_arrow` /
`outputs_arrow` hold each one's Arrow IPC stream (LZ4 when flushed, zstd once compacted), and
`inputs_json` / `outputs_json` are NULL; the query layer renders the JSON only for the rows a
query reads (query.py), so no answer pays for turning floats into text. Files written before
(JSON text, no `*_arrow` columns) are read the same way: a JSON text present is used as it is.

Files live under `lake/predictions/model=<m>/date=<YYYY-MM-DD>/hour=<HH>/<segment>.parquet`
in the data-plane object store (one per flush; a finished hour is compacted into one
`c-<segment>.parquet`, see compaction.py); filters on `model`, `date` and `hour` prune whole
directories.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from data_plane_agent.lake.records import PredictionRecord
from data_plane_agent.lake.spool import stream_bytes
from mallard.serving.wire import encode_table

LAKE_PREFIX = "lake/predictions"
RENDER_ROWS = 50_000  # request rows rendered to JSON at a time (bounds memory; one call per slice)

FILE_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("deployment_id", pa.string()),
        pa.field("variation", pa.string()),
        pa.field("build_id", pa.string()),
        pa.field("request_id", pa.string()),
        pa.field("timestamp", pa.timestamp("ms")),
        pa.field("latency_ms", pa.float64()),
        pa.field("status", pa.string()),
        pa.field("shadow", pa.bool_()),
        pa.field("rows", pa.int32()),
        pa.field("inputs_json", pa.string()),
        pa.field("outputs_json", pa.string()),
        pa.field("error", pa.string()),
        pa.field("inputs_arrow", pa.binary()),
        pa.field("outputs_arrow", pa.binary()),
    ]
)
TYPED_COLUMNS = ["inputs_arrow", "outputs_arrow"]  # Arrow IPC streams; the view shows them as JSON
DICTIONARY_COLUMNS = ["model", "deployment_id", "variation", "build_id", "status"]  # few distinct values
PARTITION_SCHEMA = pa.schema([pa.field("date", pa.string()), pa.field("hour", pa.int32())])
TABLE_SCHEMA = pa.schema(list(FILE_SCHEMA) + list(PARTITION_SCHEMA))
_SCALARS = [f for f in FILE_SCHEMA if f.name not in ("timestamp", "inputs_json", "outputs_json", *TYPED_COLUMNS)]


def parquet_compression(codec: str) -> dict[str, str]:
    """Per-column codecs: `codec` everywhere but the typed columns, which are LZ4 when flushed (a
    few microseconds per request; zstd costs several times that) and zstd once compacted."""
    return {name: codec if codec == "zstd" or name not in TYPED_COLUMNS else "lz4" for name in FILE_SCHEMA.names}


def conform(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch of a lake file (of any format version) in the current file schema: columns an older
    file lacks are null."""
    columns = [
        batch.column(name) if name in batch.schema.names else pa.nulls(batch.num_rows, FILE_SCHEMA.field(name).type)
        for name in FILE_SCHEMA.names
    ]
    return pa.RecordBatch.from_arrays(columns, names=FILE_SCHEMA.names).cast(FILE_SCHEMA)


def partition_of(record: PredictionRecord) -> tuple[str, str, int]:
    """(model, date, hour) of the partition a record belongs to (UTC)."""
    at = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)
    return record.model, at.strftime("%Y-%m-%d"), at.hour


def partition_dir(model: str, date: str, hour: int) -> str:
    """Store key prefix of one partition (the model name is URI-escaped, as hive partitioning expects)."""
    return f"{LAKE_PREFIX}/model={quote(model, safe='')}/date={date}/hour={hour:02d}"


def to_file_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """Records as a table in the file schema (timestamps become UTC datetimes at ms precision).

    The request and answer tables are kept typed, as Arrow IPC streams (`inputs_arrow`,
    `outputs_arrow`); rows that arrived as JSON text already keep it in `inputs_json` /
    `outputs_json`. Built a slice of at most RENDER_ROWS request rows at a time.
    """
    slices: list[pa.Table] = []
    start = rows = 0
    for end, record in enumerate(records, 1):
        rows += record.rows
        if rows >= RENDER_ROWS or end == len(records):
            slices.append(_file_slice(records[start:end]))
            start, rows = end, 0
    if not slices:
        return FILE_SCHEMA.empty_table()
    return slices[0] if len(slices) == 1 else pa.concat_tables(slices)


def _file_slice(records: Sequence[PredictionRecord]) -> pa.Table:
    columns = {field.name: pa.array([getattr(r, field.name) for r in records], field.type) for field in _SCALARS}
    columns["timestamp"] = pa.array([r.timestamp_ms for r in records], pa.int64()).cast(pa.timestamp("ms"))
    for name in ("inputs", "outputs"):
        values = [getattr(r, name) for r in records]
        spooled = [getattr(r, f"{name}_spooled") for r in records]  # serialised by the spool already, or None
        streams = [None if p is None else stream_bytes(p) for p in spooled]
        columns[f"{name}_json"] = pa.array([v if isinstance(v, str) else None for v in values], pa.string())
        columns[f"{name}_arrow"] = pa.array(
            [
                s if s is not None else encode_table(v) if isinstance(v, pa.Table) else None
                for v, s in zip(values, streams, strict=True)
            ],
            pa.binary(),
        )
    return pa.Table.from_arrays([columns[name] for name in FILE_SCHEMA.names], schema=FILE_SCHEMA)


def with_partitions(table: pa.Table) -> pa.Table:
    """A file-schema table in the full `predictions` schema: its `date` and `hour` (UTC) appended."""
    timestamps = table.column("timestamp")
    table = table.append_column(PARTITION_SCHEMA.field("date"), pc.strftime(timestamps, format="%Y-%m-%d"))
    return table.append_column(PARTITION_SCHEMA.field("hour"), pc.hour(timestamps).cast(pa.int32()))


def to_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """Records in the full `predictions` schema, partition columns included (for unflushed rows)."""
    return with_partitions(to_file_table(records))


def split_by_partition(table: pa.Table) -> list[tuple[tuple[str, str, int], pa.Table]]:
    """The rows of a file-schema table per partition (model, date, hour), in sorted partition order,
    each keeping the rows' order."""
    full = with_partitions(table)
    names = ["model", "date", "hour"]
    keys = full.select(names).group_by(names, use_threads=False).aggregate([])
    unique = sorted(zip(*(keys.column(name).to_pylist() for name in names), strict=True))
    if len(unique) == 1:
        return [(unique[0], table)]
    parts = []
    for model, date, hour in unique:
        mask = pc.and_(
            pc.and_(pc.equal(full.column("model"), model), pc.equal(full.column("date"), date)),
            pc.equal(full.column("hour"), hour),
        )
        parts.append(((model, date, hour), table.filter(mask)))
    return parts
