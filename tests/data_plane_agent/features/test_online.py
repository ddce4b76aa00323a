"""Online stores (SQLite and a real redis-server): after materialization every key's online value
equals the historical value at "now"; newer values win; many keys are read in one call."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_plane_agent.features.online import OnlineStore, OnlineTable
from mallard.features import Entity, Feature, FeatureSet, ParquetSource
from tests.data_plane_agent.features.conftest import make_engine

NOW = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
RIDER = Entity("rider", keys={"rider_id": "int", "city": "str"})
FEATURES = [
    Feature("trips", "int"),
    Feature("rating", "float"),
    Feature("vip", "bool"),
    Feature("segment", "str"),
    Feature("last_trip_at", "timestamp"),
]


def write_source(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    rows: dict[str, list[object]] = {
        k: [] for k in ("rider_id", "city", "ts", "created", "trips", "rating", "vip", "segment", "last")
    }
    for rider in range(60):
        for _ in range(rng.randint(0, 6)):
            ts = NOW - timedelta(hours=rng.randint(0, 24 * 5))  # some older than the 2-day TTL
            rows["rider_id"].append(rider)
            rows["city"].append(rng.choice(["paris", "oslo"]))
            rows["ts"].append(ts)
            rows["created"].append(ts + timedelta(minutes=rng.choice([0, 5, 60 * 30])))  # some arrive after NOW
            rows["trips"].append(rng.randint(0, 99))
            rows["rating"].append(rng.choice([None, rng.random() * 5]))
            rows["vip"].append(rng.choice([True, False, None]))
            rows["segment"].append(rng.choice(["a", "b", "ü"]))
            rows["last"].append(ts - timedelta(minutes=rng.randint(0, 100)))
    pq.write_table(
        pa.table(
            {
                "rider_id": pa.array(rows["rider_id"], pa.int64()),
                "city": pa.array(rows["city"], pa.string()),
                "ts": pa.array(rows["ts"], pa.timestamp("us", tz="UTC")),
                "created": pa.array(rows["created"], pa.timestamp("us", tz="UTC")),
                "trips": pa.array(rows["trips"], pa.int64()),
                "rating": pa.array(rows["rating"], pa.float64()),
                "vip": pa.array(rows["vip"], pa.bool_()),
                "segment": pa.array(rows["segment"], pa.string()),
                "last_trip_at": pa.array(rows["last"], pa.timestamp("us", tz="UTC")),
            }
        ),
        path,
    )


def test_online_values_equal_the_historical_values_at_now(tmp_path: Path, online_store: OnlineStore) -> None:
    write_source(tmp_path / "riders.parquet", seed=7)
    engine = make_engine(tmp_path, online_store)
    definition = FeatureSet(
        "rider_stats",
        entity=RIDER,
        source=ParquetSource(str(tmp_path / "riders.parquet")),
        timestamp="ts",
        created_timestamp="created",
        features=FEATURES,
        ttl=timedelta(days=2),
    )
    engine.apply([RIDER, definition], project="p")
    engine.materialize("rider_stats", project="p", start=NOW - timedelta(days=30), end=NOW)
    keys = [{"rider_id": r, "city": c} for r in range(62) for c in ("paris", "oslo")]  # 60, 61: never seen
    online = engine.get_online("rider_stats", keys, project="p", now=NOW)
    frame = pa.table(
        {
            "rider_id": pa.array([k["rider_id"] for k in keys], pa.int64()),
            "city": pa.array([k["city"] for k in keys], pa.string()),
            "event_timestamp": pa.array([NOW] * len(keys), pa.timestamp("us", tz="UTC")),
        }
    )
    historical = pq.read_table(
        engine.get_historical(frame, ["rider_stats:*"], tmp_path / "h.parquet", project="p").path
    ).to_pylist()
    names = [f.name for f in FEATURES]
    assert [{n: row[n] for n in names} for row in online] == [{n: row[n] for n in names} for row in historical]
    served = [row for row in online if row["trips"] is not None]
    assert 10 < len(served) < len(keys) - 10  # both fresh values and nulls (expired, unknown, not yet known)
    assert all(isinstance(row["last_trip_at"], datetime) for row in served)
    # One call for a subset of features, keys given as strings, returns them in the order asked.
    subset = engine.get_online("rider_stats", keys[::-1], features=["segment"], project="p", now=NOW)
    assert [row["segment"] for row in subset] == [row["segment"] for row in online[::-1]]
    assert set(subset[0]) == {"rider_id", "city", "segment", "event_timestamp"}
    assert engine.freshness("rider_stats", project="p").online_keys == online_store.count_keys(
        OnlineTable("tenant-a", "p", "rider_stats", 1, dict(RIDER.keys), definition.feature_types)
    )


def test_the_store_keeps_the_newer_row_and_namespaces_versions(online_store: OnlineStore) -> None:
    v1 = OnlineTable("t", "p", "s", 1, {"id": "int"}, {"x": "int", "y": "str"}, None)
    v2 = OnlineTable("t", "p", "s", 2, {"id": "int"}, {"x": "int", "y": "str"}, None)
    other_tenant = OnlineTable("u", "p", "s", 1, {"id": "int"}, {"x": "int", "y": "str"}, None)

    def batch(ts: list[int], created: list[int | None], x: list[int | None], y: list[str | None]) -> pa.Table:
        return pa.table(
            {
                "entity_key": pa.array(["1", "2"][: len(ts)]),
                "event_ts": pa.array(ts, pa.int64()),
                "created_ts": pa.array(created, pa.int64()),
                "x": pa.array(x, pa.int64()),
                "y": pa.array(y, pa.string()),
            }
        )

    online_store.write_batch(v1, batch([100, 100], [None, 5], [1, 2], ["a", "b"]))
    online_store.write_batch(v1, batch([50, 100], [None, 4], [9, 9], ["z", "z"]))  # older / known earlier: ignored
    online_store.write_batch(v1, batch([100, 100], [None, 6], [3, None], ["c", None]))  # same time, known later: wins
    online_store.write_batch(v2, batch([1], [None], [42], ["v2"]))
    read = online_store.read(v1, ["1", "2", "3"], ["x", "y"])
    assert [(r or {}).get("x") for r in read] == [3, None, None]
    assert [(r or {}).get("y") for r in read] == ["c", None, None]
    assert read[2] is None
    assert [(r or {}).get("x") for r in online_store.read(v2, ["1", "2"], ["x"])] == [42, None]
    assert online_store.read(other_tenant, ["1"], ["x"]) == [None]
    # Several tables read together (one Redis pipeline) answer exactly as one read each.
    reads = [(v1, ["1", "3"], ["x"]), (v2, [], ["x"]), (v2, ["1"], ["y"]), (other_tenant, ["1"], ["x"])]
    assert online_store.read_many(reads) == [online_store.read(t, k, f) for t, k, f in reads]
    assert online_store.read_many(reads)[2] == [{"y": "v2", "event_timestamp": read_v2_stamp(online_store, v2)}]
    assert online_store.count_keys(v1) == 2 and online_store.count_keys(v2) == 1
    online_store.drop(v2)
    assert online_store.read(v2, ["1"], ["x"]) == [None]
    assert online_store.count_keys(v1) == 2


def read_v2_stamp(store: OnlineStore, table: OnlineTable) -> object:
    (row,) = store.read(table, ["1"], ["x"])
    assert row is not None
    return row["event_timestamp"]
