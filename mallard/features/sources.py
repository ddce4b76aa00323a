"""Where a feature set's rows come from: Parquet, CSV, a SQL query over those, or a Redis Stream.

Batch sources are read by DuckDB. A path is a file, a directory (every `*.parquet` / `*.csv`
under it, Hive partitions allowed) or an S3 prefix `s3://bucket/prefix` (read through pyarrow;
endpoint and credentials from the usual AWS environment variables, `AWS_ENDPOINT_URL` for an
S3-compatible server). Relative paths are resolved against the definitions directory by
`load_definitions`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mallard.features.errors import FeatureDefinitionError

if TYPE_CHECKING:
    import duckdb

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class BatchSource:
    """A source DuckDB can read as a table."""

    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def resolved(self, base_dir: Path) -> BatchSource:
        """The same source with relative paths made absolute against `base_dir`."""
        return self

    def register(self, con: duckdb.DuckDBPyConnection, view: str) -> None:
        """Create a view named `view` over this source in `con`."""
        raise NotImplementedError

    @staticmethod
    def from_dict(data: dict[str, Any]) -> BatchSource:
        """Rebuild a batch source from `to_dict()` output."""
        kind = data.get("type")
        if kind == "parquet":
            return ParquetSource(str(data["path"]))
        if kind == "csv":
            return CsvSource(str(data["path"]), delimiter=str(data.get("delimiter", ",")))
        if kind == "sql":
            subs = {str(k): BatchSource.from_dict(v) for k, v in dict(data.get("sources") or {}).items()}
            return SqlSource(str(data["sql"]), sources=subs)
        raise FeatureDefinitionError(f"unknown source type {kind!r} (parquet, csv or sql)", field="source.type")


def _resolve(path: str, base_dir: Path) -> str:
    if path.startswith("s3://") or os.path.isabs(path):
        return path
    return str((base_dir / path).resolve())


def _s3_dataset(path: str, fmt: str) -> Any:
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        kwargs = {"endpoint_override": host or scheme, "scheme": scheme if host else "https"}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    filesystem = pafs.S3FileSystem(**kwargs)
    return ds.dataset(path[len("s3://") :], filesystem=filesystem, format=fmt, partitioning="hive")


@dataclass(frozen=True)
class ParquetSource(BatchSource):
    """Parquet rows: one file, a directory of files (Hive partitions allowed) or `s3://bucket/prefix`."""

    path: str
    type: ClassVar[str] = "parquet"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "path": self.path}

    def resolved(self, base_dir: Path) -> ParquetSource:
        return ParquetSource(_resolve(self.path, base_dir))

    def register(self, con: duckdb.DuckDBPyConnection, view: str) -> None:
        if self.path.startswith("s3://"):
            con.register(view, _s3_dataset(self.path, "parquet"))
            return
        path = Path(self.path)
        if not path.exists():
            raise FeatureDefinitionError(f"Parquet source {self.path!r} does not exist", field="source.path")
        pattern = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
        hive = ", hive_partitioning = true" if path.is_dir() else ""
        con.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT * FROM read_parquet({_quote(pattern)}{hive})')


@dataclass(frozen=True)
class CsvSource(BatchSource):
    """CSV rows with a header line: one file, a directory of `*.csv` files or `s3://bucket/prefix`."""

    path: str
    delimiter: str = ","
    type: ClassVar[str] = "csv"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "path": self.path, "delimiter": self.delimiter}

    def resolved(self, base_dir: Path) -> CsvSource:
        return CsvSource(_resolve(self.path, base_dir), delimiter=self.delimiter)

    def register(self, con: duckdb.DuckDBPyConnection, view: str) -> None:
        if self.path.startswith("s3://"):
            con.register(view, _s3_dataset(self.path, "csv"))
            return
        path = Path(self.path)
        if not path.exists():
            raise FeatureDefinitionError(f"CSV source {self.path!r} does not exist", field="source.path")
        pattern = str(path / "**" / "*.csv") if path.is_dir() else str(path)
        con.execute(
            f'CREATE OR REPLACE TEMP VIEW "{view}" AS SELECT * FROM '
            f"read_csv({_quote(pattern)}, header = true, delim = {_quote(self.delimiter)})"
        )


@dataclass(frozen=True)
class SqlSource(BatchSource):
    """A DuckDB query over named sources: `SqlSource("SELECT ... FROM trips JOIN drivers ...",
    sources={"trips": ParquetSource(...), "drivers": CsvSource(...)})`."""

    sql: str
    sources: dict[str, BatchSource] = field(default_factory=dict)
    type: ClassVar[str] = "sql"

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise FeatureDefinitionError("SqlSource needs a non-empty query", field="source.sql")
        for name in self.sources:
            if not _NAME.match(name):
                raise FeatureDefinitionError(f"source name {name!r} is not a SQL identifier", field="source.sources")

    def __hash__(self) -> int:
        return hash((self.sql, tuple(sorted(self.sources))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "sql": self.sql,
            "sources": {k: v.to_dict() for k, v in sorted(self.sources.items())},
        }

    def resolved(self, base_dir: Path) -> SqlSource:
        return SqlSource(self.sql, sources={k: v.resolved(base_dir) for k, v in self.sources.items()})

    def register(self, con: duckdb.DuckDBPyConnection, view: str) -> None:
        for name, source in self.sources.items():
            source.register(con, name)
        con.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS {self.sql}')


@dataclass(frozen=True)
class RedisStreamSource:
    """Events appended to a Redis Stream (`XADD stream * driver_id 7 ts 1732760000.5 amount 12.5`).

    `redis_url` defaults to the agent's configured Redis. Each entry carries the entity key
    fields, the event timestamp (epoch seconds or ISO 8601) and the aggregated columns.
    """

    stream: str
    redis_url: str | None = None
    type: ClassVar[str] = "redis_stream"

    def __post_init__(self) -> None:
        if not isinstance(self.stream, str) or not self.stream:
            raise FeatureDefinitionError("RedisStreamSource needs a stream name", field="stream.stream")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "stream": self.stream, "redis_url": self.redis_url}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> RedisStreamSource:
        """Rebuild from `to_dict()` output."""
        if data.get("type") != RedisStreamSource.type:
            raise FeatureDefinitionError(f"unknown stream type {data.get('type')!r}", field="stream.type")
        return RedisStreamSource(str(data["stream"]), redis_url=data.get("redis_url"))
