"""SQL over the inference lake with DuckDB: the log is the table `predictions`.

Queries are read-only by construction: exactly one SELECT (or WITH ... SELECT) statement, run on
a fresh in-memory DuckDB connection that cannot touch files or load extensions
(`enable_external_access=false`, configuration locked). The Parquet files are read through a
pyarrow dataset (local directory or S3 alike; DuckDB's httpfs is not needed) registered as a
view, unioned with the rows the writer has not flushed yet, so an answered prediction is
queryable at once. Results are capped at `max_rows` (the answer says when it was truncated) and
a query running longer than `timeout_s` is interrupted.
"""

from __future__ import annotations

import base64
import math
import threading
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import duckdb
import grpc
import pyarrow as pa
import pyarrow.dataset as ds
from duckdb.func import PythonUDFType

from data_plane_agent.lake.compaction import visible
from data_plane_agent.lake.jsonrows import ipc_json
from data_plane_agent.lake.table import FILE_SCHEMA, LAKE_PREFIX, TABLE_SCHEMA, TYPED_COLUMNS
from data_plane_agent.lake.writer import InferenceLake
from data_plane_agent.storage import ObjectStore
from data_plane_agent.storage.arrow import store_filesystem
from shared.errors import InvalidInput, MallardError, Unavailable

MAX_SQL_CHARS = 100_000
_PARTITIONING = ds.partitioning(
    pa.schema([pa.field("model", pa.string()), pa.field("date", pa.string()), pa.field("hour", pa.int32())]),
    flavor="hive",
)


class QueryTimeout(MallardError):
    """A lake query ran longer than the agent allows."""

    http_status = 504
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    code = "query_timeout"
    non_retryable = False


@dataclass(frozen=True)
class QueryResult:
    """Column names and DuckDB types, rows as JSON-ready lists, and whether rows were cut at the limit."""

    columns: list[dict[str, str]]
    rows: list[list[Any]]
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "row_count": len(self.rows), "truncated": self.truncated}


def check_select(sql: str) -> str:
    """The one read-only statement in `sql` (without a trailing ';'), or InvalidInput naming `sql`."""
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidInput("sql is empty; send one SELECT statement", field="sql")
    if len(sql) > MAX_SQL_CHARS:
        raise InvalidInput(f"sql is longer than {MAX_SQL_CHARS} characters", field="sql")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidInput(f"sql does not parse: {exc}", field="sql") from exc
    if len(statements) != 1:
        raise InvalidInput(f"sql must be exactly one statement, got {len(statements)}", field="sql")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        kind = str(statement.type).rsplit(".", 1)[-1]
        raise InvalidInput(f"only SELECT (or WITH ... SELECT) queries are allowed, got {kind}", field="sql")
    return str(statement.query).strip().rstrip(";")


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


class LakeQuery:
    """Runs read-only SQL over the lake of one store (and the unflushed rows of `lake`, if given)."""

    def __init__(
        self,
        store: ObjectStore,
        lake: InferenceLake | None = None,
        *,
        max_rows: int = 10_000,
        timeout_s: float = 30.0,
        memory_limit: str = "1GB",
        threads: int = 2,
        max_concurrent: int = 2,
    ) -> None:
        self.store = store
        self.lake = lake
        self.max_rows = max_rows
        self.timeout_s = timeout_s
        self.memory_limit = memory_limit
        self.threads = threads
        self._slots = threading.BoundedSemaphore(max_concurrent)

    def _files(self, skip_segments: set[str]) -> ds.Dataset:
        filesystem, base = store_filesystem(self.store, LAKE_PREFIX)
        paths = []
        for key in visible(self.store.list(LAKE_PREFIX + "/")):
            if key.rsplit("/", 1)[-1].removesuffix(".parquet") not in skip_segments:
                paths.append(base + key[len(LAKE_PREFIX) :])
        return ds.dataset(
            paths,
            schema=TABLE_SCHEMA,
            format="parquet",
            filesystem=filesystem,
            partitioning=_PARTITIONING,
            partition_base_dir=base,
        )

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "python_enable_replacements": False,
                "memory_limit": self.memory_limit,
                "threads": self.threads,
            },
        )
        try:
            if self.lake is not None:
                with self.lake.snapshot_lock():
                    pending, segments = self.lake.unflushed()
                    files = self._files(segments)
            else:
                pending, files = TABLE_SCHEMA.empty_table(), self._files(set())
        except (OSError, pa.ArrowException) as exc:
            con.close()
            raise Unavailable(f"cannot read the inference lake from the object store: {exc}") from exc
        con.register("_lake_files", files)
        con.register("_lake_unflushed", pending)
        # Request and answer tables are stored typed (Arrow IPC); their JSON is rendered here, only
        # for the rows a query reads. Older files hold the JSON text itself.
        con.create_function(
            "_lake_json",
            ipc_json,
            [duckdb.sqltypes.BLOB],
            duckdb.sqltypes.VARCHAR,
            type=PythonUDFType.ARROW,
            side_effects=False,
        )
        shown = [name for name in TABLE_SCHEMA.names if name not in TYPED_COLUMNS]
        columns = ", ".join(
            f'coalesce("{name}", _lake_json("{name.removesuffix("_json")}_arrow")) AS "{name}"'
            if name in ("inputs_json", "outputs_json")
            else f'"{name}"'
            for name in shown
        )
        con.execute(
            f"CREATE TEMP VIEW predictions AS SELECT {columns} FROM _lake_files "
            f"UNION ALL SELECT {columns} FROM _lake_unflushed"
        )
        con.execute("SET lock_configuration = true")
        return con

    def run(self, sql: str, *, limit: int | None = None) -> QueryResult:
        """Run one SELECT; at most `limit` (default and cap: `max_rows`) rows come back."""
        statement = check_select(sql)
        if limit is not None and limit < 1:
            raise InvalidInput("limit must be at least 1", field="limit")
        cap = min(limit or self.max_rows, self.max_rows)
        if not self._slots.acquire(timeout=self.timeout_s):
            raise Unavailable("too many lake queries are running on this agent; retry shortly")
        try:
            return self._run(statement, cap)
        finally:
            self._slots.release()

    def _run(self, statement: str, cap: int) -> QueryResult:
        con = self._connect()
        timer = threading.Timer(self.timeout_s, con.interrupt)
        timer.start()
        try:
            relation = con.sql(f"SELECT * FROM ({statement}) AS q LIMIT {cap + 1}")
            table = relation.to_arrow_table()
            columns = [{"name": n, "type": str(t)} for n, t in zip(relation.columns, relation.types, strict=True)]
        except duckdb.InterruptException as exc:
            raise QueryTimeout(
                f"the query ran longer than {self.timeout_s:g} s; add filters or a LIMIT", field="sql"
            ) from exc
        except duckdb.Error as exc:
            raise InvalidInput(f"query failed: {exc}", field="sql") from exc
        finally:
            timer.cancel()
            con.close()
        truncated = table.num_rows > cap
        table = table.slice(0, cap)
        values = [column.to_pylist() for column in table.columns]
        rows = [[_json_value(column[i]) for column in values] for i in range(table.num_rows)]
        return QueryResult(columns=columns, rows=rows, truncated=truncated)


__all__ = ["FILE_SCHEMA", "LakeQuery", "QueryResult", "QueryTimeout", "check_select"]
