"""Materialization adopts canonical Parquet source files byte for byte (and falls back to the usual
copy whenever the footers cannot prove a file canonical); the in-memory join's index follows the
manifest and is rebuilt when missing or damaged. Results are compared with a set that goes the
usual way over the same values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_plane_agent.features import FeatureEngine
from mallard.features import Entity, Feature, FeatureSet, ParquetSource
from tests.data_plane_agent.features.conftest import make_engine

DAY = timedelta(days=1)
DAY0 = datetime(2026, 2, 1, tzinfo=UTC)
DRIVER = Entity("driver", keys={"driver_id": "int"})


def rows_table(days: int, drivers: int = 40, shift: int = 0, first_day: int = 0) -> pa.Table:
    ids, stamps, trips, rating = [], [], [], []
    for day in range(first_day, first_day + days):
        for d in range(drivers):
            for hour in (3, 15):
                ids.append(d)
                stamps.append(DAY0 + day * DAY + timedelta(hours=hour, minutes=d))
                trips.append(day * 1000 + d * 10 + hour + shift)
                rating.append(d / 10 + day)
    return pa.table(
        {
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            "trips": pa.array(trips, pa.int64()),
            "rating": pa.array(rating, pa.float64()),
        }
    )


def feature_set(source: Path, timestamp: str = "event_timestamp") -> FeatureSet:
    return FeatureSet(
        "stats",
        entity=DRIVER,
        source=ParquetSource(str(source)),
        timestamp=timestamp,
        features=[Feature("trips", "int"), Feature("rating", "float")],
        ttl=timedelta(days=2),
    )


def materialized(root: Path, table: pa.Table, *, timestamp: str = "event_timestamp", days: int = 3) -> FeatureEngine:
    root.mkdir(parents=True, exist_ok=True)
    source = root / "source.parquet"
    if timestamp != "event_timestamp":
        table = table.rename_columns([timestamp if c == "event_timestamp" else c for c in table.column_names])
    pq.write_table(table, source)
    engine = make_engine(root)
    engine.apply([feature_set(source, timestamp)], project="p")
    engine.materialize("stats", project="p", start=DAY0, end=DAY0 + days * DAY)
    return engine


def part_files(engine: FeatureEngine) -> list[Path]:
    keys = [k for parts in engine.registry.manifest("p", "stats", 1).values() for k in parts]
    return [Path(p) for p in engine.offline.local_files("p", "stats", 1, keys)]


def offline_table(engine: FeatureEngine) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in part_files(engine)]).sort_by(
        [("driver_id", "ascending"), ("event_timestamp", "ascending")]
    )


def training_set(engine: FeatureEngine, root: Path, times: list[datetime]) -> list[dict[str, object]]:
    entities = pa.table(
        {
            "driver_id": pa.array([d % 45 for d in range(len(times))], pa.int64()),
            "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )
    path = root / f"entities-{len(times)}.parquet"
    pq.write_table(entities, path)
    out = root / "training.parquet"
    engine.get_historical(path, ["stats:trips", "stats:rating"], out, project="p")
    return pq.read_table(out).to_pylist()


def entity_times(days: int) -> list[datetime]:
    """Times over the whole window and a day either side, including exact event times."""
    return [DAY0 - DAY + timedelta(hours=7 * i, minutes=i % 40) for i in range(int((days + 2) * 24 / 7))]


def test_canonical_parquet_is_adopted_byte_for_byte_and_reads_like_the_usual_copy(tmp_path: Path) -> None:
    table = rows_table(days=3)
    adopted = materialized(tmp_path / "adopted", table)
    copied = materialized(tmp_path / "copied", table, timestamp="ts")  # a renamed column: the usual path
    # One partition spanning the source's event dates, whose part is the source file itself.
    assert list(adopted.registry.manifest("p", "stats", 1)) == ["2026-02-01..2026-02-03"]
    (part,) = part_files(adopted)
    assert part.read_bytes() == (tmp_path / "adopted" / "source.parquet").read_bytes()
    assert sorted(copied.registry.manifest("p", "stats", 1)) == ["2026-02-01", "2026-02-02", "2026-02-03"]
    assert adopted.freshness("stats", project="p").offline_rows == table.num_rows == 240
    # Training sets and online values are the same either way.
    times = entity_times(3)
    assert training_set(adopted, tmp_path / "adopted", times) == training_set(copied, tmp_path / "copied", times)
    keys = [{"driver_id": d} for d in range(42)]
    now = DAY0 + 3 * DAY
    assert adopted.get_online("stats", keys, project="p", now=now) == copied.get_online(
        "stats", keys, project="p", now=now
    )
    # A later run over part of the span rewrites it as dated partitions, with no duplicate rows.
    pq.write_table(rows_table(days=3, shift=7), tmp_path / "adopted" / "source.parquet")
    adopted.materialize("stats", project="p", start=DAY0 + DAY, end=DAY0 + 2 * DAY)
    assert sorted(adopted.registry.manifest("p", "stats", 1)) == ["2026-02-01", "2026-02-02", "2026-02-03"]
    offline = offline_table(adopted)
    assert offline.num_rows == 240
    by_day: dict[int, set[int]] = {}
    for trips, ts in zip(offline["trips"].to_pylist(), offline["event_timestamp"].to_pylist(), strict=True):
        by_day.setdefault((ts - DAY0).days, set()).add(trips % 10)
    assert by_day == {0: {3, 5}, 1: {0, 2}, 2: {3, 5}}  # only day 1 has the new values (hour + 7)
    assert adopted.offline.stored_keys("p", "stats", 1) == sorted(
        k for parts in adopted.registry.manifest("p", "stats", 1).values() for k in parts
    )


def _extra_column(table: pa.Table) -> pa.Table:
    return table.append_column("note", pa.array(["x"] * table.num_rows))


def _row_after_the_range(table: pa.Table) -> pa.Table:
    return pa.concat_tables([table, rows_table(days=1, drivers=1, first_day=5)])


def _null_key(table: pa.Table) -> pa.Table:
    ids = table.column("driver_id").to_pylist()
    ids[0] = None
    return table.set_column(0, "driver_id", pa.array(ids, pa.int64()))


def _int32_feature(table: pa.Table) -> pa.Table:
    return table.set_column(2, "trips", table.column("trips").cast(pa.int32()))


@pytest.mark.parametrize(
    ("change", "expected_rows"),
    [(_extra_column, 240), (_row_after_the_range, 240), (_null_key, 239), (_int32_feature, 240)],
    ids=["extra-column", "row-outside-the-range", "null-key", "narrower-type"],
)
def test_files_the_footers_cannot_prove_canonical_go_the_usual_way(
    tmp_path: Path, change: object, expected_rows: int
) -> None:
    engine = materialized(tmp_path, change(rows_table(days=3)))  # type: ignore[operator]
    assert sorted(engine.registry.manifest("p", "stats", 1)) == ["2026-02-01", "2026-02-02", "2026-02-03"]
    offline = offline_table(engine)
    assert offline.num_rows == expected_rows
    assert offline.column_names == ["driver_id", "event_timestamp", "trips", "rating"]
    assert offline.schema.field("trips").type == pa.int64()


def index_dirs(engine: FeatureEngine) -> list[Path]:
    root = engine.indexes.root / "p" / "stats" / "v1"
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def test_the_join_index_follows_the_manifest_and_is_rebuilt_when_damaged(tmp_path: Path) -> None:
    engine = materialized(tmp_path / "a", rows_table(days=2), days=2)
    reference = materialized(tmp_path / "b", rows_table(days=2), timestamp="ts", days=2)
    (first,) = index_dirs(engine)  # built by the materialization, before any retrieval
    times = entity_times(3)
    assert training_set(engine, tmp_path / "a", times) == training_set(reference, tmp_path / "b", times)
    # New data: a new manifest gets a new index, the old one is removed, and no stale answer is given.
    for eng, root, ts in ((engine, tmp_path / "a", "event_timestamp"), (reference, tmp_path / "b", "ts")):
        table = rows_table(days=3)
        if ts != "event_timestamp":
            table = table.rename_columns([ts if c == "event_timestamp" else c for c in table.column_names])
        pq.write_table(table, root / "source.parquet")
        eng.materialize("stats", project="p", start=DAY0 + 2 * DAY, end=DAY0 + 3 * DAY)
    (second,) = index_dirs(engine)
    assert second != first
    got = training_set(engine, tmp_path / "a", times)
    assert got == training_set(reference, tmp_path / "b", times)
    assert any(isinstance(row["trips"], int) and row["trips"] >= 2000 for row in got)  # day 2's values are seen
    # A damaged or missing index is rebuilt from the parts, with the same answer.
    (second / "composite.npy").write_bytes(b"not an array")
    assert training_set(engine, tmp_path / "a", times) == got
    for path in index_dirs(engine):
        for item in path.iterdir():
            item.unlink()
        path.rmdir()
    assert training_set(engine, tmp_path / "a", times) == got
    assert len(index_dirs(engine)) == 1
