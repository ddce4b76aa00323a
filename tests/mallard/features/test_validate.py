"""validate(): definitions are checked against their data before anything is registered."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mallard.features import (
    CsvSource,
    Entity,
    Feature,
    FeatureDefinitionError,
    FeatureSet,
    ParquetSource,
    SqlSource,
    validate,
)

DRIVER = Entity("driver", keys={"driver_id": "int"})


@pytest.fixture
def data(tmp_path: Path) -> Path:
    table = pa.table(
        {
            "driver_id": [1, 2],
            "event_ts": pa.array([datetime(2026, 1, 1), datetime(2026, 1, 2)], pa.timestamp("us")),
            "trips": [3, 4],
            "rating": [4.5, 3.0],
            "city": ["a", "b"],
        }
    )
    pq.write_table(table, tmp_path / "stats.parquet")
    (tmp_path / "drivers.csv").write_text("driver_id,joined\n1,2025-01-01 00:00:00\n2,2025-02-01 00:00:00\n")
    return tmp_path


def stats(data: Path, **changes: object) -> FeatureSet:
    base: dict[str, object] = {
        "name": "driver_stats",
        "entity": DRIVER,
        "source": ParquetSource(str(data / "stats.parquet")),
        "timestamp": "event_ts",
        "features": [Feature("trips", "int"), Feature("rating", "float"), Feature("city", "str")],
        "ttl": timedelta(days=1),
    }
    base.update(changes)
    return FeatureSet(**base)  # type: ignore[arg-type]


def test_good_definitions_pass_including_sql_sources_and_transforms(data: Path) -> None:
    joined = SqlSource(
        "SELECT s.*, d.joined FROM stats s JOIN drivers d USING (driver_id)",
        sources={"stats": ParquetSource(str(data / "stats.parquet")), "drivers": CsvSource(str(data / "drivers.csv"))},
    )
    validate(
        [
            DRIVER,
            stats(data),
            stats(
                data,
                name="tenure",
                source=joined,
                transform_sql="SELECT driver_id, event_ts, joined, trips * 2 AS double_trips FROM source",
                features=[Feature("double_trips", "int"), Feature("joined", "timestamp")],
            ),
        ]
    )


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"features": [Feature("trips_today", "int")]},
            "features.trips_today",
            "column 'trips_today' is not in the source",
        ),
        ({"features": [Feature("rating", "int")]}, "features.rating.type", "declared int but the column is DOUBLE"),
        ({"features": [Feature("city", "float")]}, "features.city.type", "declared float but the column is VARCHAR"),
        ({"timestamp": "ts"}, "timestamp", "timestamp column 'ts' is not in the source"),
        (
            {"timestamp": "city", "features": [Feature("trips", "int")]},
            "timestamp",
            "must be a TIMESTAMP or DATE, but it is VARCHAR",
        ),
        ({"created_timestamp": "created"}, "created_timestamp", "'created' is not in the source"),
        ({"entity": Entity("driver", keys={"driver_id": "str"})}, "entity.keys.driver_id", "declared str"),
        ({"transform_sql": "SELEKT * FROM source"}, "transform_sql", "syntax error"),
        ({"transform_sql": "SELECT nope FROM source"}, "transform_sql", "nope"),
        ({"source": ParquetSource("/nonexistent/stats.parquet")}, "source.path", "does not exist"),
        ({"source": SqlSource("SELECT * FROM missing_table")}, "source.sql", "missing_table"),
    ],
)
def test_a_definition_that_does_not_match_its_data_names_the_field(
    data: Path, changes: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(FeatureDefinitionError) as caught:
        validate([stats(data, **changes)])
    assert caught.value.field == field
    assert caught.value.definition == "driver_stats"
    assert message in str(caught.value)


def test_duplicate_names_are_refused(data: Path) -> None:
    with pytest.raises(FeatureDefinitionError, match="two feature sets are named 'driver_stats'") as caught:
        validate([stats(data), stats(data, features=[Feature("trips", "int")])])
    assert caught.value.field == "name"
    with pytest.raises(FeatureDefinitionError, match="defined twice with different keys"):
        validate([stats(data), stats(data, name="other", entity=Entity("driver", keys={"driver_id": "str"}))])
    validate([stats(data), stats(data)])  # the same definition twice (imported by two files) is fine
