"""`mallard.FeatureStore`: training sets and online values from the data plane, in Python.

```python
store = mallard.FeatureStore()                       # the CLI's profile / MALLARD_* environment
train = store.get_historical(entity_df, ["driver_stats:trips_today", "driver_stats:rating"])
rows = store.get_online("driver_stats", [{"driver_id": 7}, {"driver_id": 9}])
```

Calls go to the agent's data-plane REST API with a short-lived JWT that the control plane signs
(like every data-plane call); feature values travel only between you and your data plane. The
data plane's gRPC `OnlineFeatures` service answers the same reads for latency-critical callers.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    import pandas as pd

    from mallard.client import ControlPlaneClient
    from mallard.config import Profile
    from mallard.dataplane import DataPlaneClient


class FeatureStore:
    """A client of one data plane's feature store. Use as a context manager or call `close()`.

    `project` is needed only when a feature-set name exists in several projects.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        profile: Profile | None = None,
        data_plane_url: str | None = None,
        timeout: float = 300.0,
    ) -> None:
        from mallard.client import ControlPlaneClient
        from mallard.dataplane import DataPlaneClient

        self.project = project
        self._cp: ControlPlaneClient = ControlPlaneClient(profile)
        self._dp: DataPlaneClient = DataPlaneClient(self._cp, data_plane_url, timeout=timeout)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._dp.close()
        self._cp.close()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get_online(
        self,
        feature_set: str,
        keys: Sequence[dict[str, Any]] | dict[str, Any],
        features: Sequence[str] | None = None,
        version: int | None = None,
    ) -> list[dict[str, Any]]:
        """Current values for every key (one dict per key, in order) in one round trip.

        Each row has the key columns, the features (None where unknown or older than the TTL) and
        `event_timestamp` (ISO-8601, None when nothing is known).
        """
        key_list = [keys] if isinstance(keys, dict) else list(keys)
        body: dict[str, Any] = {"feature_set": feature_set, "keys": key_list}
        if features:
            body["features"] = list(features)
        if version is not None:
            body["version"] = version
        if self.project:
            body["project"] = self.project
        rows: list[dict[str, Any]] = self._dp.online_features(body)["rows"]
        return rows

    @overload
    def get_historical(
        self,
        entities: str | Path | pd.DataFrame,
        features: Sequence[str],
        *,
        out: None = None,
        timestamp_column: str = ...,
        full_feature_names: bool = ...,
    ) -> pd.DataFrame: ...

    @overload
    def get_historical(
        self,
        entities: str | Path | pd.DataFrame,
        features: Sequence[str],
        *,
        out: str | Path,
        timestamp_column: str = ...,
        full_feature_names: bool = ...,
    ) -> Path: ...

    def get_historical(
        self,
        entities: str | Path | pd.DataFrame,
        features: Sequence[str],
        *,
        out: str | Path | None = None,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
    ) -> pd.DataFrame | Path:
        """Point-in-time correct features for every entity row.

        `entities` is a Parquet or CSV file, or a pandas DataFrame, with the entity key columns and
        `timestamp_column`. `features` are `set:feature` references (`set@2:feature`, `set:*`).
        With `out`, the result is written there as Parquet (streamed; for frames larger than
        memory) and its path returned; otherwise it comes back as a DataFrame.
        """
        if not features:
            raise ValueError("features must name at least one set:feature")
        params: dict[str, Any] = {
            "features": ",".join(features),
            "timestamp_column": timestamp_column,
            "full_feature_names": str(full_feature_names).lower(),
        }
        if self.project:
            params["project"] = self.project
        with tempfile.TemporaryDirectory(prefix="mallard-features-") as tmp:
            if isinstance(entities, str | Path):
                source = Path(entities)
                if not source.is_file():
                    raise FileNotFoundError(f"entity file {source} does not exist")
            else:
                source = Path(tmp) / "entities.parquet"
                entities.to_parquet(source, index=False)
            target = Path(out) if out is not None else Path(tmp) / "features.parquet"
            self._dp.historical_features(source, target, params)
            if out is not None:
                return target
            import pandas as pd

            return pd.read_parquet(target)

    def get_online_frame(self, frame: pd.DataFrame, refs: Sequence[str], *, entity_keys: Sequence[str]) -> pd.DataFrame:
        """`frame` with a column per `set:feature` reference, read online by `entity_keys` (`mallard.enrich`)."""
        from mallard.enrichment import enrich

        return enrich(frame, list(refs), self, entity_keys=entity_keys)
