"""The feature-store part of `make demo`: a small feature repository written on the fly.

Seven days of per-driver statistics in Parquet (seeded, ending now so the last day is inside
the two-day TTL) and the Python file that defines them, as a data scientist would write it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

DRIVERS = 50
DAYS = 7

DEFINITIONS = '''"""Driver statistics: one definition for training sets and online serving."""

from datetime import timedelta

from mallard.features import Entity, Feature, FeatureSet, ParquetSource

driver = Entity("driver", keys={"driver_id": "int"}, description="a ride-hailing driver")

driver_stats = FeatureSet(
    "driver_stats",
    entity=driver,
    source=ParquetSource("data/driver_stats.parquet"),
    timestamp="event_ts",
    features=[Feature("trips_today", "int"), Feature("rating", "float"), Feature("acceptance_rate", "float")],
    ttl=timedelta(days=2),
    schedule="@hourly",
    description="daily driver activity",
)
'''


def write_feature_repo(directory: Path) -> Path:
    """`directory/features.py` and `directory/data/driver_stats.parquet`; returns `directory`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = [(d, end - timedelta(days=DAYS - 1 - day)) for d in range(1, DRIVERS + 1) for day in range(DAYS)]
    table = pa.table(
        {
            "driver_id": pa.array([d for d, _ in rows], pa.int64()),
            "event_ts": pa.array([t for _, t in rows], pa.timestamp("us", tz="UTC")),
            "trips_today": pa.array([(d * 7 + t.day) % 23 for d, t in rows], pa.int64()),
            "rating": pa.array([round(4.0 + ((d * 13 + t.day) % 10) / 10, 2) for d, t in rows], pa.float64()),
            "acceptance_rate": pa.array([round(0.5 + ((d + t.day) % 50) / 100, 2) for d, t in rows], pa.float64()),
        }
    )
    (directory / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / "data" / "driver_stats.parquet")
    (directory / "features.py").write_text(DEFINITIONS)
    return directory


def write_entities(path: Path) -> Path:
    """A training-set entity frame: three drivers at three points in time (one before any data)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    now = datetime.now(UTC)
    when = [now - timedelta(days=10), now - timedelta(days=3, hours=1), now]
    pq.write_table(
        pa.table(
            {
                "driver_id": pa.array([1, 2, 3], pa.int64()),
                "event_timestamp": pa.array(when, pa.timestamp("us", tz="UTC")),
            }
        ),
        path,
    )
    return path
