"""Definitions: the JSON form round-trips, fingerprints are stable, compatibility decides versions."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

import mallard
from mallard.features import (
    Aggregation,
    CsvSource,
    Entity,
    Feature,
    FeatureDefinitionError,
    FeatureSet,
    ParquetSource,
    RedisStreamSource,
    SqlSource,
    StreamFeatureSet,
    definition_from_dict,
    load_definitions,
)

DRIVER = Entity("driver", keys={"driver_id": "int"}, description="a driver")


def stats(**changes: object) -> FeatureSet:
    base: dict[str, object] = {
        "name": "driver_stats",
        "entity": DRIVER,
        "source": SqlSource(
            "SELECT * FROM trips JOIN drivers USING (driver_id)",
            sources={"trips": ParquetSource("s3://bucket/trips"), "drivers": CsvSource("drivers.csv")},
        ),
        "timestamp": "event_ts",
        "created_timestamp": "created_ts",
        "transform_sql": "SELECT driver_id, event_ts, created_ts, trips AS trips_today, rating FROM source",
        "features": [Feature("trips_today", "int"), Feature("rating", "float64")],
        "ttl": timedelta(days=2),
        "schedule": "@hourly",
    }
    base.update(changes)
    return FeatureSet(**base)  # type: ignore[arg-type]


def test_definitions_round_trip_through_json_with_stable_fingerprints() -> None:
    payments = StreamFeatureSet(
        "driver_payments",
        entity=DRIVER,
        stream=RedisStreamSource("payments", redis_url="redis://127.0.0.1:6379/0"),
        timestamp="ts",
        aggregations=[
            Aggregation("amount", "sum", window=timedelta(hours=1)),
            Aggregation("amount", "count", timedelta(days=7)),
        ],
    )
    for definition in (DRIVER, stats(), payments):
        wire = json.loads(json.dumps(definition.to_dict()))
        again = definition_from_dict(wire)
        assert again == definition
        assert again.fingerprint == definition.fingerprint
    assert stats().feature_types == {"trips_today": "int", "rating": "float"}  # aliases are canonicalised
    assert [a.name for a in payments.aggregations] == ["amount_sum_1h", "amount_count_7d"]
    assert stats(description="other words").fingerprint == stats().fingerprint
    assert stats(ttl=timedelta(days=3)).fingerprint != stats().fingerprint


def test_public_names_are_exported_from_mallard() -> None:
    assert mallard.FeatureSet is FeatureSet and mallard.Entity is Entity and mallard.SqlSource is SqlSource
    assert mallard.RedisStreamSource is RedisStreamSource and mallard.Aggregation is Aggregation


def test_compatible_changes_keep_the_version_and_breaking_ones_do_not() -> None:
    old = stats()
    assert stats(features=[*old.features, Feature("cancellations", "int")]).compatible_with(old)
    assert stats(ttl=None, schedule="0 * * * *", transform_sql="SELECT * FROM source").compatible_with(old)
    removed = stats(features=[Feature("trips_today", "int")])
    assert removed.incompatibilities(old) == ["feature 'rating' was removed"]
    retyped = stats(features=[Feature("trips_today", "float"), Feature("rating", "float")])
    assert retyped.incompatibilities(old) == ["feature 'trips_today' changed type from int to float"]
    assert not stats(entity=Entity("driver", keys={"driver_id": "str"})).compatible_with(old)
    assert not stats(timestamp="ts").compatible_with(old)
    assert not stats(created_timestamp=None).compatible_with(old)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Entity("driver", keys={}), "entity.keys"),
        (lambda: Entity("driver", keys={"id": "float"}), "entity.keys.id"),
        (lambda: Entity("bad name", keys={"id": "int"}), "entity.name"),
        (lambda: stats(features=[Feature("a", "int"), Feature("a", "float")]), "features.a"),
        (lambda: stats(features=[Feature("driver_id", "int")]), "features.driver_id"),
        (lambda: stats(features=[]), "features"),
        (lambda: stats(version=0), "version"),
        (lambda: stats(schedule="every hour"), "schedule"),
        (lambda: stats(ttl=timedelta(0)), "ttl"),
        (lambda: Feature("x", "decimal128"), "features.x.type"),
        (lambda: Aggregation("amount", "median", timedelta(hours=1)), "aggregations.function"),
        (lambda: SqlSource("  "), "source.sql"),
    ],
)
def test_malformed_definitions_are_refused_naming_the_field(build: object, field: str) -> None:
    with pytest.raises(FeatureDefinitionError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field


def test_load_definitions_collects_a_directory_and_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "entities.py").write_text(
        "from mallard import Entity\ndriver = Entity('driver', keys={'driver_id': 'int'})\n"
    )
    (tmp_path / "stats.py").write_text(
        "from datetime import timedelta\n"
        "from mallard import Feature, FeatureSet, ParquetSource\n"
        "from entities import driver\n"
        "stats = FeatureSet('driver_stats', entity=driver, source=ParquetSource('data/stats.parquet'),\n"
        "                   timestamp='ts', features=[Feature('trips', 'int')], ttl=timedelta(days=1))\n"
    )
    (tmp_path / "_private.py").write_text("raise RuntimeError('never imported')\n")
    found = load_definitions(tmp_path)
    assert [d.name for d in found] == ["driver", "driver_stats"]
    fs = found[1]
    assert isinstance(fs, FeatureSet) and isinstance(fs.source, ParquetSource)
    assert fs.source.path == str(tmp_path / "data" / "stats.parquet")


def test_load_definitions_names_the_file_that_fails(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("from mallard import Feature\nx = Feature('trips', 'complex')\n")
    with pytest.raises(FeatureDefinitionError, match=r"broken\.py: unknown type 'complex'"):
        load_definitions(tmp_path)
    (tmp_path / "broken.py").write_text("import nonexistent_module_xyz\n")
    with pytest.raises(FeatureDefinitionError, match=r"broken\.py failed to import: ModuleNotFoundError"):
        load_definitions(tmp_path)
