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

Files live under `lake/predictions/model=<m>/date=<YYYY-MM-DD>/hour=<HH>/<segment>.parquet`
in the data-plane object store (one per flush; a finished hour is compacted into one
`c-<segment>.parquet`, see compaction.py); filters on `model`, `date` and `hour` prune whole
directories.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from urllib.parse import quote

import pyarrow as pa

from data_plane_agent.lake.records import PredictionRecord

LAKE_PREFIX = "lake/predictions"

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
    ]
)
DICTIONARY_COLUMNS = ["model", "deployment_id", "variation", "build_id", "status"]  # few distinct values
PARTITION_SCHEMA = pa.schema([pa.field("date", pa.string()), pa.field("hour", pa.int32())])
TABLE_SCHEMA = pa.schema(list(FILE_SCHEMA) + list(PARTITION_SCHEMA))


def partition_of(record: PredictionRecord) -> tuple[str, str, int]:
    """(model, date, hour) of the partition a record belongs to (UTC)."""
    at = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)
    return record.model, at.strftime("%Y-%m-%d"), at.hour


def partition_dir(model: str, date: str, hour: int) -> str:
    """Store key prefix of one partition (the model name is URI-escaped, as hive partitioning expects)."""
    return f"{LAKE_PREFIX}/model={quote(model, safe='')}/date={date}/hour={hour:02d}"


def to_file_table(records: Iterable[PredictionRecord]) -> pa.Table:
    """Records as a table in the file schema (timestamps become UTC datetimes at ms precision)."""
    records = list(records)
    columns = {
        name: [getattr(r, "timestamp_ms" if name == "timestamp" else name) for r in records]
        for name in FILE_SCHEMA.names
    }
    arrays = []
    for field in FILE_SCHEMA:
        values = columns[field.name]
        if field.name == "timestamp":
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=FILE_SCHEMA)


def to_table(records: Iterable[PredictionRecord]) -> pa.Table:
    """Records in the full `predictions` schema, partition columns included (for unflushed rows)."""
    records = list(records)
    table = to_file_table(records)
    parts = [partition_of(r) for r in records]
    table = table.append_column(PARTITION_SCHEMA.field("date"), pa.array([p[1] for p in parts], pa.string()))
    return table.append_column(PARTITION_SCHEMA.field("hour"), pa.array([p[2] for p in parts], pa.int32()))


def group_by_partition(records: Iterable[PredictionRecord]) -> dict[tuple[str, str, int], list[PredictionRecord]]:
    """Records grouped by partition, groups in a deterministic (sorted) order."""
    groups: dict[tuple[str, str, int], list[PredictionRecord]] = defaultdict(list)
    for record in records:
        groups[partition_of(record)].append(record)
    return dict(sorted(groups.items()))
