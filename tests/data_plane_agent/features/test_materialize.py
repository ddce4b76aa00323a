"""Materialization: incremental from the watermark, backfills, overlapping runs without duplicates,
freshness metadata, and refusal of bad input with nothing written."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_plane_agent.features import FeatureEngine
from mallard.features import Entity, Feature, FeatureSet, ParquetSource
from shared.errors import Conflict, InvalidInput
from tests.data_plane_agent.features.conftest import make_engine

DAY = timedelta(days=1)
DRIVER = Entity("driver", keys={"driver_id": "int"})


def write_day(source: Path, day: datetime, drivers: int = 50, per_driver: int = 4, shift: int = 0) -> None:
    """One Parquet file per day in a source directory (new days arrive as new files)."""
    ids = [d for d in range(drivers) for _ in range(per_driver)]
    stamps = [day + timedelta(hours=6 * i) for _ in range(drivers) for i in range(per_driver)]
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array(ids, pa.int64()),
                "ts": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                "trips": pa.array([d * 10 + i + shift for d in range(drivers) for i in range(per_driver)], pa.int64()),
            }
        ),
        source / f"{day.date()}.parquet",
    )


def stats_set(source: Path, **changes: object) -> FeatureSet:
    base: dict[str, object] = {
        "name": "stats",
        "entity": DRIVER,
        "source": ParquetSource(str(source)),
        "timestamp": "ts",
        "features": [Feature("trips", "int")],
        "ttl": timedelta(days=3),
    }
    base.update(changes)
    return FeatureSet(**base)  # type: ignore[arg-type]


def offline_rows(engine: FeatureEngine) -> list[tuple[object, ...]]:
    keys = [k for parts in engine.registry.manifest("p", "stats", 1).values() for k in parts]
    files = engine.offline.local_files("p", "stats", 1, keys)
    if not files:
        return []
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.execute(f"SELECT driver_id, event_timestamp, trips FROM read_parquet({files}) ORDER BY ALL").fetchall()


def source_rows(source: Path, start: datetime, end: datetime) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.execute(
        f"SELECT driver_id, ts, trips FROM read_parquet('{source}/*.parquet') WHERE ts >= ? AND ts < ? ORDER BY ALL",
        [start, end],
    ).fetchall()


def test_overlapping_runs_write_no_duplicates_and_incremental_resumes_from_the_watermark(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    day0 = datetime(2026, 2, 1, tzinfo=UTC)
    for i in range(3):
        write_day(source, day0 + i * DAY)
    engine = make_engine(tmp_path)
    engine.apply([stats_set(source)], project="p")
    phases: list[str] = []
    first = engine.materialize(
        "stats", project="p", start=day0, end=day0 + 2 * DAY, progress=lambda phase, done, total: phases.append(phase)
    )
    assert first.source_rows == 400 and first.online_rows == 50
    assert {"reading source", "writing online store", "writing offline store"} <= set(phases)
    # A backfill overlapping the first run (half of day 1 and all of day 2), twice: rows are replaced, not added.
    for _ in range(2):
        engine.materialize("stats", project="p", start=day0 + 1.5 * DAY, end=day0 + 3 * DAY)
    assert offline_rows(engine) == source_rows(source, day0, day0 + 3 * DAY)
    assert len(offline_rows(engine)) == 600
    # The watermark moved to the end of the contiguous range; new data arrives; an incremental run picks it up.
    assert engine.freshness("stats", project="p").watermark == day0 + 3 * DAY
    write_day(source, day0 + 3 * DAY)
    run = engine.materialize("stats", project="p", end=day0 + 4 * DAY)
    assert run.start == day0 + 3 * DAY and run.source_rows == 200
    assert offline_rows(engine) == source_rows(source, day0, day0 + 4 * DAY)
    fresh = engine.freshness("stats", project="p").to_dict()
    assert fresh["offline_rows"] == 800 and fresh["online_keys"] == 50
    assert fresh["watermark"] == (day0 + 4 * DAY).isoformat() and fresh["last_materialized_at"] is not None
    # Rewriting a day of the source and re-running its range replaces the values; still no duplicates.
    write_day(source, day0 + DAY, shift=1000)
    engine.materialize("stats", project="p", start=day0 + DAY, end=day0 + 2 * DAY)
    assert offline_rows(engine) == source_rows(source, day0, day0 + 4 * DAY)
    partitions = engine.registry.manifest("p", "stats", 1)
    assert sorted(partitions) == ["2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04"]
    # Replaced parts are gone from the store: only the manifest's parts remain.
    assert engine.offline.stored_keys("p", "stats", 1) == sorted(k for parts in partitions.values() for k in parts)


def test_a_backfill_of_old_data_does_not_overwrite_newer_online_values(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    day0 = datetime(2026, 2, 1, tzinfo=UTC)
    write_day(source, day0, drivers=3, per_driver=1)
    write_day(source, day0 + DAY, drivers=3, per_driver=1, shift=500)
    engine = make_engine(tmp_path)
    engine.apply([stats_set(source)], project="p")
    engine.materialize("stats", project="p", start=day0 + DAY, end=day0 + 2 * DAY)
    engine.materialize("stats", project="p", start=day0, end=day0 + DAY)
    now = day0 + 2 * DAY
    values = engine.get_online("stats", [{"driver_id": d} for d in range(3)], project="p", now=now)
    assert [v["trips"] for v in values] == [500, 510, 520]


def test_bad_requests_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    write_day(source, datetime(2026, 2, 1, tzinfo=UTC))
    engine = make_engine(tmp_path)
    engine.apply([stats_set(source)], project="p")
    with pytest.raises(InvalidInput, match="must be before end") as caught:
        engine.materialize("stats", project="p", start=datetime(2026, 3, 1), end=datetime(2026, 2, 1))
    assert caught.value.field == "start"
    with pytest.raises(InvalidInput) as bad:
        engine.apply([stats_set(source, features=[Feature("trips", "str")])], project="p")
    assert bad.value.field == "features.trips.type"
    with pytest.raises(Conflict, match="bump the version"):
        engine.apply([stats_set(source, features=[Feature("trips", "float")])], project="p", check_data=False)
    assert engine.definition("stats", project="p").feature_types == {"trips": "int"}
    # A compatible change keeps the version; an incompatible one under a new version keeps the old one readable.
    engine.apply([stats_set(source, ttl=timedelta(days=1))], project="p")
    engine.apply([stats_set(source, version=2, features=[Feature("trips", "float")])], project="p")
    assert [(d.name, d.version) for d in engine.definitions(project="p")] == [("stats", 1), ("stats", 2)]
    assert engine.definition("stats", version=1, project="p").feature_types == {"trips": "int"}
    assert engine.registry.manifest("p", "stats", 1) == {}
    assert engine.offline.stored_keys("p", "stats", 1) == []


def test_concurrent_runs_of_the_same_set_do_not_duplicate_rows(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    day0 = datetime(2026, 2, 1, tzinfo=UTC)
    for i in range(3):
        write_day(source, day0 + i * DAY, drivers=20)
    engine = make_engine(tmp_path)
    engine.apply([stats_set(source)], project="p")
    ranges = [(day0, day0 + 3 * DAY), (day0 + DAY, day0 + 3 * DAY), (day0, day0 + 2 * DAY)] * 2
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda r: engine.materialize("stats", project="p", start=r[0], end=r[1]), ranges))
    assert offline_rows(engine) == source_rows(source, day0, day0 + 3 * DAY)


def test_an_interrupted_run_leaves_the_previous_partitions_readable_and_is_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    day0 = datetime(2026, 2, 1, tzinfo=UTC)
    write_day(source, day0, drivers=5)
    engine = make_engine(tmp_path)
    engine.apply([stats_set(source)], project="p")
    engine.materialize("stats", project="p", start=day0, end=day0 + DAY)
    before = offline_rows(engine)
    write_day(source, day0, drivers=5, shift=100)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("agent killed before committing")

    monkeypatch.setattr(engine.registry, "record_run", crash)
    with pytest.raises(RuntimeError):
        engine.materialize("stats", project="p", start=day0, end=day0 + DAY)
    monkeypatch.undo()
    assert offline_rows(engine) == before  # readers still see exactly the committed partition
    assert len(engine.offline.stored_keys("p", "stats", 1)) == 2  # plus one unreferenced part
    engine.materialize("stats", project="p", start=day0, end=day0 + DAY)
    assert offline_rows(engine) == source_rows(source, day0, day0 + DAY)
    assert len(engine.offline.stored_keys("p", "stats", 1)) == 1


def test_incremental_runs_pick_up_rows_that_arrive_late(tmp_path: Path) -> None:
    day0 = datetime(2026, 2, 1, tzinfo=UTC)

    def write(rows: list[tuple[int, datetime, datetime, int]]) -> None:
        pq.write_table(
            pa.table(
                {
                    "driver_id": pa.array([r[0] for r in rows], pa.int64()),
                    "ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
                    "created": pa.array([r[2] for r in rows], pa.timestamp("us", tz="UTC")),
                    "trips": pa.array([r[3] for r in rows], pa.int64()),
                }
            ),
            tmp_path / "source.parquet",
        )

    rows = [(1, day0 + timedelta(hours=h), day0 + timedelta(hours=h), h) for h in (1, 30)]
    write(rows)
    engine = make_engine(tmp_path)
    engine.apply([stats_set(tmp_path / "source.parquet", created_timestamp="created")], project="p")
    engine.materialize("stats", project="p", end=day0 + 2 * DAY)
    # Known only after the watermark, but about the first day: the next incremental run adds it.
    late = (2, day0 + timedelta(hours=5), day0 + 2 * DAY + timedelta(hours=3), 99)
    write([*rows, late])
    run = engine.materialize("stats", project="p", end=day0 + 3 * DAY)
    assert run.start == day0 + 2 * DAY
    assert offline_rows(engine) == sorted((r[0], r[1], r[3]) for r in [*rows, late])
    values = engine.get_online("stats", [{"driver_id": 2}], project="p", now=day0 + DAY)
    assert values[0]["trips"] == 99
