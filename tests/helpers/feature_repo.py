"""A small feature repository on disk: driver statistics in Parquet and the Python file that defines them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DRIVERS = (1, 2, 3, 4, 5)
DAYS = 3

# Recent enough that the last day is within the 2-day TTL now (online reads apply the TTL to "now").
START = (datetime.now(UTC) - timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)


def trips(driver: int, day: int) -> int:
    return driver * 10 + day


def rating(driver: int, day: int) -> float:
    return round(4.0 + driver / 10 + day / 100, 4)


def write_driver_stats(path: Path) -> Path:
    """One row per driver per day, for DAYS days from START."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(d, START + timedelta(days=day), trips(d, day), rating(d, day)) for d in DRIVERS for day in range(DAYS)]
    table = pa.table(
        {
            "driver_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
            "trips_today": pa.array([r[2] for r in rows], pa.int64()),
            "rating": pa.array([r[3] for r in rows], pa.float64()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


DEFINITIONS = """
from datetime import timedelta

from mallard.features import Entity, Feature, FeatureSet, ParquetSource

driver = Entity("driver", keys={"driver_id": "int"})
driver_stats = FeatureSet(
    "driver_stats",
    entity=driver,
    source=ParquetSource("data/driver_stats.parquet"),
    timestamp="event_ts",
    features=[Feature("trips_today", "int"), Feature("rating", "float")],
    ttl=timedelta(days=2),
    schedule=None,
)
"""


def write_repo(directory: Path, *, definitions: str = DEFINITIONS) -> Path:
    """`directory/features.py` plus `directory/data/driver_stats.parquet`."""
    directory.mkdir(parents=True, exist_ok=True)
    write_driver_stats(directory / "data" / "driver_stats.parquet")
    (directory / "features.py").write_text(definitions)
    return directory


def write_entities(path: Path, rows: Sequence[tuple[int | None, datetime | None]], *, with_ts: bool = True) -> Path:
    """An entity frame: driver_id and (unless with_ts=False) event_timestamp."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"driver_id": pa.array([r[0] for r in rows], pa.int64())}
    if with_ts:
        columns["event_timestamp"] = pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table(columns), path)
    return path


def materialized_service(root: Path, *, project: str = "rides") -> Any:
    """A started FeatureService over a local store and SQLite online store, with the repo's
    driver_stats applied and materialized. Call `.shutdown()` and `.engine.close()` after."""
    from data_plane_agent.features import FeatureEngine, SqliteOnlineStore
    from data_plane_agent.features.service import FeatureService
    from data_plane_agent.link.outbox import Outbox
    from data_plane_agent.storage import LocalObjectStore
    from mallard.features import FeatureSet, load_definitions

    repo = write_repo(root / "repo")
    engine = FeatureEngine(
        root / "home", LocalObjectStore(root / "store"), SqliteOnlineStore(root / "online.sqlite"), "ten_t", threads=1
    )
    service = FeatureService(engine, outbox=Outbox(root / "outbox.db"), schedule_interval_seconds=3600)
    service.start()
    sets = [d for d in load_definitions(repo) if isinstance(d, FeatureSet)]
    definitions = [
        {"project": project, "name": d.name, "version": d.version, "kind": d.kind, "definition": d.to_dict()}
        for d in sets
    ]
    service.apply({"tenant_id": "ten_t", "definitions": definitions})
    for d in sets:
        job: dict[str, Any] = {"job_id": f"mat_{d.name}", "project": project, "name": d.name, "version": d.version}
        service.materialize(job)
        service.wait(job["job_id"], timeout=60)
    return service
