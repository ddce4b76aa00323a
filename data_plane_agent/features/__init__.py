"""The data-plane feature store: offline Parquet, point-in-time joins, materialization, online
SQLite/Redis and streaming window aggregations. Feature values never leave the data plane.

Surface the wiring calls (everything else in this package is machinery):

```python
from data_plane_agent.features import FeatureEngine, open_online_store

online = open_online_store(settings_url, default_path=home / "features" / "online.sqlite")  # or "redis://..."
engine = FeatureEngine(home, store, online, tenant_id, memory_limit="2GB")   # store: an ObjectStore

engine.apply(defs, project="p")            # defs: Definition objects or their to_dict() JSON
    # -> [{"name", "version", "kind", "fingerprint", "changed"}]; InvalidInput (field) when bad or
    #    not matching the data, Conflict (409) when an applied version changes incompatibly
engine.definitions(project="p") / engine.definition("driver_stats", version=None, project="p")
engine.projects()                          # projects with applied definitions
engine.materialize("driver_stats", version=None, project="p", start=None, end=None,
                   progress=lambda phase, done, total: ...)   # total may be None
    # -> MaterializationResult(.to_dict(): name, version, start, end, source_rows, online_rows,
    #    partitions, watermark, seconds). Incremental from the stored watermark when start is None.
engine.get_historical(entities, ["driver_stats:trips_today", "driver_stats@2:rating", "other:*"],
                      out_path, project="p", timestamp_column="event_timestamp",
                      full_feature_names=False)
    # entities: a Parquet or CSV path, or a pyarrow.Table -> HistoricalResult(path, rows); every
    #    entity row once, in order. InvalidInput (field = the column) for missing/null keys or
    #    timestamps; NotFound for a set never materialized. In memory up to pit_memory_rows rows
    #    (entity frame, and per set), fully out of core (DuckDB, spilling) above.
engine.get_online("driver_stats", [{"driver_id": 1}, ...], features=None, version=None, project="p")
    # -> [{"driver_id": 1, "trips_today": 3, ..., "event_timestamp": datetime | None}, ...]
    #    one round trip to the online store; values older than the TTL come back as None
engine.freshness("driver_stats", project="p").to_dict()
    # -> {name, version, last_materialized_at, watermark, offline_rows, online_keys}
agg = engine.stream_aggregator("driver_payments", project="p", redis_url=None)
agg.start(); ...; agg.stop()               # consumes the Redis Stream, keeps windows online
```

Offline layout in the object store:
`features/<tenant>/<project>/<set>/v<version>/date=YYYY-MM-DD/part-<id>.parquet`.
Which parts make up each partition is the registry's manifest (committed once per run), not a
listing. Online keys are namespaced `<tenant>/<project>/<set>/v<version>`. Agent-local state
(definitions, watermarks, the manifest with row counts) lives in `<home>/features/registry.sqlite`.
Runs of one feature set version are serialised by a file lock under `<home>/features/work/locks`.
Stream sets: a value written online is stamped with the time it was computed (its
`event_timestamp`); run one aggregator per stream set.
"""

from __future__ import annotations

from data_plane_agent.features.engine import FeatureEngine, Freshness, HistoricalResult, parse_ref
from data_plane_agent.features.materialize import MaterializationResult
from data_plane_agent.features.online import OnlineStore, OnlineTable, SqliteOnlineStore, open_online_store

__all__ = [
    "FeatureEngine",
    "Freshness",
    "HistoricalResult",
    "MaterializationResult",
    "OnlineStore",
    "OnlineTable",
    "SqliteOnlineStore",
    "open_online_store",
    "parse_ref",
]
