"""Feature definitions: define a feature once for training (point-in-time joins) and serving (online store).

```python
from datetime import timedelta
from mallard import Entity, Feature, FeatureSet, ParquetSource

driver = Entity("driver", keys={"driver_id": "int"})
driver_stats = FeatureSet(
    "driver_stats",
    entity=driver,
    source=ParquetSource("data/driver_stats.parquet"),
    timestamp="event_ts",
    features=[Feature("trips_today", "int"), Feature("rating", "float")],
    ttl=timedelta(days=2),
    schedule="@hourly",
)
```

`load_definitions(dir)` collects the definitions from a directory of Python files,
`validate(defs)` checks them against their data with DuckDB (`FeatureDefinitionError` names the
definition and field), and `to_dict()`/`definition_from_dict()` are the JSON form the control
plane stores and the data-plane agent runs. Importing this package does not import DuckDB.
"""

from __future__ import annotations

from mallard.features.definitions import (
    AGGREGATIONS,
    Aggregation,
    AnyFeatureSet,
    Definition,
    Entity,
    Feature,
    FeatureSet,
    StreamFeatureSet,
    definition_from_dict,
)
from mallard.features.errors import FeatureDefinitionError
from mallard.features.loader import load_definitions
from mallard.features.sources import BatchSource, CsvSource, ParquetSource, RedisStreamSource, SqlSource
from mallard.features.validate import validate

__all__ = [
    "AGGREGATIONS",
    "Aggregation",
    "AnyFeatureSet",
    "BatchSource",
    "CsvSource",
    "Definition",
    "Entity",
    "Feature",
    "FeatureDefinitionError",
    "FeatureSet",
    "ParquetSource",
    "RedisStreamSource",
    "SqlSource",
    "StreamFeatureSet",
    "definition_from_dict",
    "load_definitions",
    "validate",
]
