"""The seeded data both systems read: one Parquet source file per feature set and an entity frame.

Each entity has one row per day in every set (at a random second of that day), so a set holds
entities x days rows. The entity frame draws its keys from 5 % more ids than have history (those
rows must come back with nulls) and its timestamps from one day before the first source row to
the end of the window (rows before the first day, or more than the TTL after an entity's last
row, come back with nulls too). A `request_id` column numbers the entity rows so results can be
matched row by row. The window ends at today's midnight UTC (so values are fresh for online reads at "now"); files
are cached under a directory named after the parameters and that date.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ENTITY_KEY = "driver_id"
TIMESTAMP = "event_timestamp"
INT_FEATURES = 2  # of each set's features, the last INT_FEATURES are int64, the rest float64


def window_start(days: int, today: datetime | None = None) -> datetime:
    """The window ends at today's midnight (UTC), so the latest values are within a 1-day+ TTL of now:
    online reads, which apply the TTL against the current time, find them."""
    now = today or datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days)


@dataclass(frozen=True)
class Spec:
    """What to generate; the cache directory's name is derived from it."""

    entities: int
    days: int
    sets: int
    features: int
    entity_rows: int
    ttl_days: int
    seed: int
    start: datetime  # midnight UTC; the window is [start, start + days)

    @property
    def key(self) -> str:
        return (
            f"e{self.entities}-d{self.days}-s{self.sets}-f{self.features}-r{self.entity_rows}-seed{self.seed}"
            f"-{self.start:%Y%m%d}"
        )

    @property
    def rows_per_set(self) -> int:
        return self.entities * self.days

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    def set_name(self, index: int) -> str:
        return f"set{index}"

    def feature_names(self, index: int) -> list[str]:
        return [f"s{index}_f{j}" for j in range(self.features)]

    def feature_types(self, index: int) -> dict[str, str]:
        names = self.feature_names(index)
        return {n: ("int" if j >= len(names) - INT_FEATURES else "float") for j, n in enumerate(names)}


@dataclass(frozen=True)
class Dataset:
    """Where the generated files are: `sources/<set>.parquet` and `entities.parquet`."""

    spec: Spec
    root: Path

    def source(self, index: int) -> Path:
        return self.root / "sources" / f"{self.spec.set_name(index)}.parquet"

    @property
    def entities(self) -> Path:
        return self.root / "entities.parquet"


def _set_schema(spec: Spec, index: int) -> pa.Schema:
    fields = [pa.field(ENTITY_KEY, pa.int64()), pa.field(TIMESTAMP, pa.timestamp("us", tz="UTC"))]
    for name, kind in spec.feature_types(index).items():
        fields.append(pa.field(name, pa.int64() if kind == "int" else pa.float64()))
    return pa.schema(fields)


def _write_set(spec: Spec, index: int, path: Path) -> None:
    rng = np.random.default_rng([spec.seed, index])
    schema = _set_schema(spec, index)
    ids = np.arange(1, spec.entities + 1, dtype=np.int64)
    start_us = int(spec.start.timestamp() * 1_000_000)
    with pq.ParquetWriter(path, schema) as writer:
        for day in range(spec.days):  # one row group per day, in event-time order as a log is appended
            seconds = rng.integers(0, 86_400, size=spec.entities)
            micros = start_us + (day * 86_400 + seconds) * 1_000_000
            order = np.argsort(micros, kind="stable")
            columns: list[pa.Array] = [pa.array(ids[order]), pa.array(micros[order], pa.timestamp("us", tz="UTC"))]
            for kind in spec.feature_types(index).values():
                values: np.ndarray = (
                    rng.integers(0, 1_000, size=spec.entities) if kind == "int" else rng.normal(size=spec.entities)
                )
                columns.append(pa.array(values[order]))
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def _write_entities(spec: Spec, path: Path) -> None:
    rng = np.random.default_rng([spec.seed, 1_000_003])
    unknown = max(1, spec.entities // 20)
    ids = rng.integers(1, spec.entities + unknown + 1, size=spec.entity_rows)
    start_s = int(spec.start.timestamp()) - 86_400
    seconds = rng.integers(start_s, int(spec.end.timestamp()), size=spec.entity_rows)
    table = pa.table(
        {
            "request_id": pa.array(np.arange(spec.entity_rows, dtype=np.int64)),
            ENTITY_KEY: pa.array(ids.astype(np.int64)),
            TIMESTAMP: pa.array(seconds * 1_000_000, pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(table, path)


def generate(spec: Spec, cache: Path) -> Dataset:
    """The dataset for `spec` under `cache`, generated on first use (seeded: identical every time)."""
    root = cache.resolve() / spec.key
    cache.mkdir(parents=True, exist_ok=True)
    if (root / "spec.json").exists():
        return Dataset(spec, root)
    # Built aside and renamed into place, so a concurrent run never sees a half-written dataset.
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.key}-", dir=cache.resolve()))
    try:
        (staging / "sources").mkdir()
        for index in range(spec.sets):
            _write_set(spec, index, Dataset(spec, staging).source(index))
        _write_entities(spec, Dataset(spec, staging).entities)
        (staging / "spec.json").write_text(json.dumps(asdict(spec), default=str))
        with contextlib.suppress(OSError):  # another run finished first: its files are identical
            staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for stale in cache.resolve().glob(f"{spec.key.rsplit('-', 1)[0]}-2*"):  # the same data for earlier dates
        if stale != root:
            shutil.rmtree(stale, ignore_errors=True)
    return Dataset(spec, root)
