"""Point-in-time correctness: historical retrieval equals a brute-force reference (hypothesis).

Two feature sets are materialized into the offline store and joined with random entity rows:
`stats` has a created timestamp (rows arrive late) and a TTL, `zone_stats` has a composite key
(int + str), no created timestamp and sometimes no TTL, `recent` has one int key and no created
timestamp (the numpy join). Each example runs in memory or fully out of core (DuckDB streaming).
Event times collide on purpose (ties), some entities have no history, and entity timestamps come
in several time zones.
"""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mallard.features import Entity, Feature, FeatureSet, ParquetSource
from shared.errors import InvalidInput, NotFound
from tests.data_plane_agent.features.conftest import make_engine

BASE = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DRIVER = Entity("driver", keys={"driver_id": "int"})
DRIVER_ZONE = Entity("driver_zone", keys={"driver_id": "int", "zone": "str"})
ZONES = ["north", "south"]
TIME_ZONES = [None, "UTC", "Asia/Kolkata", "America/Los_Angeles"]
COUNTER = itertools.count()

stats_rows = st.lists(
    st.tuples(
        st.integers(1, 4),  # driver_id
        st.integers(0, 72),  # event hour
        st.integers(0, 30),  # hours until the row was known
        st.integers(-1000, 1000),  # value
    ),
    max_size=40,
)
zone_rows = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from(ZONES), st.integers(0, 72), st.floats(-1e6, 1e6, allow_nan=False)),
    max_size=40,
)
entity_rows = st.lists(
    st.tuples(st.integers(1, 5), st.sampled_from(ZONES), st.integers(-5, 110)),  # driver 5 has no history
    min_size=1,
    max_size=30,
)


def write_sources(root: Path, stats: list[Any], zones: list[Any], ttl_hours: int | None) -> list[Any]:
    root.mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array([r[0] for r in stats], pa.int64()),
                "event_ts": pa.array([BASE + r[1] * HOUR for r in stats], pa.timestamp("us", tz="UTC")),
                "created_ts": pa.array([BASE + (r[1] + r[2]) * HOUR for r in stats], pa.timestamp("us", tz="UTC")),
                "trips": pa.array([r[3] for r in stats], pa.int64()),
            }
        ),
        root / "stats.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array([r[0] for r in zones], pa.int64()),
                "zone": pa.array([r[1] for r in zones], pa.string()),
                # naive timestamps in the source are UTC
                "ts": pa.array([(BASE + r[2] * HOUR).replace(tzinfo=None) for r in zones], pa.timestamp("us")),
                "surge": pa.array([r[3] for r in zones], pa.float64()),
            }
        ),
        root / "zones.parquet",
    )
    return [
        DRIVER,
        DRIVER_ZONE,
        FeatureSet(
            "stats",
            entity=DRIVER,
            source=ParquetSource(str(root / "stats.parquet")),
            timestamp="event_ts",
            created_timestamp="created_ts",
            features=[Feature("trips", "int")],
            ttl=timedelta(hours=24),
        ),
        FeatureSet(
            "zone_stats",
            entity=DRIVER_ZONE,
            source=ParquetSource(str(root / "zones.parquet")),
            timestamp="ts",
            features=[Feature("surge", "float")],
            ttl=None if ttl_hours is None else timedelta(hours=ttl_hours),
        ),
        FeatureSet(
            "recent",
            entity=DRIVER,
            source=ParquetSource(str(root / "stats.parquet")),
            timestamp="event_ts",
            features=[Feature("trips", "int")],
            ttl=timedelta(hours=12),
        ),
    ]


def reference(candidates: list[tuple[datetime, datetime, Any]], at: datetime, ttl: timedelta | None) -> set[Any]:
    """Brute force: the acceptable values (several only for exact ties) for one entity row."""
    known = [(et, ct, v) for et, ct, v in candidates if et <= at and ct <= at]
    if not known:
        return {None}
    best = max((et, ct) for et, ct, _ in known)
    if ttl is not None and best[0] < at - ttl:
        return {None}
    return {v for et, ct, v in known if (et, ct) == best}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stats=stats_rows,
    zones=zone_rows,
    entities=entity_rows,
    tz=st.sampled_from(TIME_ZONES),
    zone_ttl=st.sampled_from([None, 6, 36]),
    in_memory=st.booleans(),
)
def test_historical_retrieval_matches_a_brute_force_reference(
    tmp_path: Path,
    stats: list[Any],
    zones: list[Any],
    entities: list[Any],
    tz: str | None,
    zone_ttl: int | None,
    in_memory: bool,
) -> None:
    root = tmp_path / f"ex{next(COUNTER)}"
    try:
        engine = make_engine(root)
        engine.pit_memory_rows = 10_000 if in_memory else 0
        engine.apply(write_sources(root / "data", stats, zones, zone_ttl), project="p")
        for name in ("stats", "zone_stats", "recent"):
            engine.materialize(name, project="p", start=BASE - 24 * HOUR, end=BASE + 200 * HOUR)
        times = [BASE + h * HOUR for _, _, h in entities]
        ts_type = pa.timestamp("us", tz=tz)
        frame = pa.table(
            {
                "driver_id": pa.array([e[0] for e in entities], pa.int64()),
                "zone": pa.array([e[1] for e in entities], pa.string()),
                "event_timestamp": pa.array([t if tz else t.replace(tzinfo=None) for t in times], ts_type),
                "label": pa.array(range(len(entities)), pa.int64()),
            }
        )
        out = engine.get_historical(
            frame,
            ["stats:trips", "zone_stats:surge", "recent:trips"],
            root / "out.parquet",
            project="p",
            full_feature_names=True,
        )
        result = pq.read_table(out.path)
        assert out.rows == len(entities) == result.num_rows
        assert result.column("label").to_pylist() == list(range(len(entities)))  # every row, in order
        assert result.column("event_timestamp").to_pylist() == frame.column("event_timestamp").to_pylist()
        trips = result.column("stats__trips").to_pylist()
        surge = result.column("zone_stats__surge").to_pylist()
        recent = result.column("recent__trips").to_pylist()
        for i, (driver, zone, _) in enumerate(entities):
            at = times[i]
            stat_rows = [(BASE + h * HOUR, BASE + (h + d) * HOUR, v) for k, h, d, v in stats if k == driver]
            assert trips[i] in reference(stat_rows, at, timedelta(hours=24)), (i, entities[i])
            recent_rows = [(BASE + h * HOUR, BASE + h * HOUR, v) for k, h, _, v in stats if k == driver]
            assert recent[i] in reference(recent_rows, at, timedelta(hours=12)), (i, entities[i])
            zrows = [(BASE + h * HOUR, BASE + h * HOUR, v) for k, z, h, v in zones if (k, z) == (driver, zone)]
            ttl = None if zone_ttl is None else timedelta(hours=zone_ttl)
            assert surge[i] in reference(zrows, at, ttl), (i, entities[i])
        engine.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_entity_rows_without_keys_or_timestamps_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.apply(write_sources(tmp_path / "data", [(1, 1, 0, 5)], [(1, "north", 1, 2.0)], 6), project="p")
    engine.materialize("stats", project="p", start=BASE, end=BASE + 100 * HOUR)
    out = tmp_path / "out.parquet"
    cases = [
        (pa.table({"event_timestamp": pa.array([BASE])}), "driver_id"),
        (pa.table({"driver_id": [1]}), "event_timestamp"),
        (
            pa.table({"driver_id": pa.array([1, None], pa.int64()), "event_timestamp": pa.array([BASE, BASE])}),
            "driver_id",
        ),
        (
            pa.table({"driver_id": [1, 2], "event_timestamp": pa.array([BASE, None], pa.timestamp("us"))}),
            "event_timestamp",
        ),
        (pa.table({"driver_id": ["x"], "event_timestamp": pa.array([BASE])}), "driver_id"),
    ]
    for frame, field in cases:
        with pytest.raises(InvalidInput) as caught:
            engine.get_historical(frame, ["stats:trips"], out, project="p")
        assert caught.value.field == field, caught.value.message
        assert not out.exists()
    with pytest.raises(InvalidInput, match="has no feature 'nope'"):
        engine.get_historical(
            pa.table({"driver_id": [1], "event_timestamp": pa.array([BASE])}), ["stats:nope"], out, project="p"
        )
    with pytest.raises(InvalidInput, match="must look like set:feature"):
        engine.get_historical(
            pa.table({"driver_id": [1], "event_timestamp": pa.array([BASE])}), ["stats"], out, project="p"
        )
    assert not out.exists()


def test_entity_files_in_parquet_and_csv(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.apply(write_sources(tmp_path / "data", [(1, 1, 0, 5), (2, 2, 0, 7)], [], 6), project="p")
    engine.materialize("stats", project="p", start=BASE, end=BASE + 100 * HOUR)
    csv = tmp_path / "entities.csv"
    csv.write_text(
        "driver_id,event_timestamp\n2,2026-03-01T05:00:00Z\n1,2026-03-01T03:00:00+00:00\n3,2026-03-01T03:00:00Z\n"
    )
    result = engine.get_historical(csv, ["stats:*"], tmp_path / "a.parquet", project="p")
    assert pq.read_table(result.path).column("trips").to_pylist() == [7, 5, None]
    pq.write_table(
        pa.table({"driver_id": [2, 1], "event_timestamp": pa.array([BASE + 5 * HOUR, BASE], pa.timestamp("us"))}),
        tmp_path / "e.parquet",
    )
    result = engine.get_historical(tmp_path / "e.parquet", ["stats:trips"], tmp_path / "b.parquet", project="p")
    assert pq.read_table(result.path).column("trips").to_pylist() == [7, None]


def test_a_set_that_was_never_materialized_is_an_error_not_silent_nulls(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    engine.apply(write_sources(tmp_path / "data", [(1, 1, 0, 5)], [], 6), project="p")
    frame = pa.table({"driver_id": [1], "event_timestamp": pa.array([BASE])})
    with pytest.raises(NotFound, match="never been materialized"):
        engine.get_historical(frame, ["stats:trips"], tmp_path / "out.parquet", project="p")
    assert not (tmp_path / "out.parquet").exists()
