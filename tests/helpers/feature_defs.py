"""Feature-set definitions in their JSON form (what `mallard features apply` sends), for API tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mallard.features import Entity, Feature, FeatureSet, ParquetSource


def batch_feature_set(
    name: str = "driver_stats",
    *,
    version: int = 1,
    features: dict[str, str] | None = None,
    keys: dict[str, str] | None = None,
    timestamp: str = "event_ts",
    schedule: str | None = "@hourly",
    description: str = "",
    path: str = "/data/driver_stats",
) -> FeatureSet:
    """A feature set over a Parquet source (the data need not exist: the control plane never reads it)."""
    features = features if features is not None else {"trips_today": "int", "rating": "float"}
    return FeatureSet(
        name,
        entity=Entity("driver", keys=keys or {"driver_id": "int"}),
        source=ParquetSource(path),
        timestamp=timestamp,
        features=[Feature(n, t) for n, t in features.items()],
        ttl=timedelta(days=2),
        schedule=schedule,
        version=version,
        description=description,
    )


def batch_definition(name: str = "driver_stats", **kwargs: Any) -> dict[str, Any]:
    """An apply entry {name, version, kind, definition} for `batch_feature_set(name, **kwargs)`."""
    feature_set = batch_feature_set(name, **kwargs)
    return {
        "name": feature_set.name,
        "version": feature_set.version,
        "kind": feature_set.kind,
        "definition": feature_set.to_dict(),
    }
