"""Mallard: take a model from a notebook to production.

This package is the public SDK and the `mallard` command line. The SDK half (`Model`,
`ModelSchema`, `Field`, `log_param`, `log_metric`, ...) must stay importable inside a model's
build environment, which has only the SDK's own small dependencies, so the REST client is
imported lazily and the SDK modules import pandas only when a function needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mallard.feature_refs import FeatureRef
from mallard.model import Model
from mallard.schema import Field, ModelSchema, SchemaError
from mallard.tracking import log_metric, log_param
from shared import __version__

if TYPE_CHECKING:
    from mallard.client import ApiError, ControlPlaneClient
    from mallard.enrichment import enrich
    from mallard.feature_store import FeatureStore
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
    )

# Feature definitions load on first use (`from mallard import FeatureSet`), keeping `import mallard` light.
_FEATURE_NAMES = (
    "Aggregation",
    "CsvSource",
    "Entity",
    "Feature",
    "FeatureDefinitionError",
    "FeatureSet",
    "ParquetSource",
    "RedisStreamSource",
    "SqlSource",
    "StreamFeatureSet",
)

__all__ = [
    "Aggregation",
    "ApiError",
    "ControlPlaneClient",
    "CsvSource",
    "Entity",
    "Feature",
    "FeatureDefinitionError",
    "FeatureRef",
    "FeatureSet",
    "FeatureStore",
    "Field",
    "Model",
    "ModelSchema",
    "ParquetSource",
    "RedisStreamSource",
    "SchemaError",
    "SqlSource",
    "StreamFeatureSet",
    "__version__",
    "enrich",
    "log_metric",
    "log_param",
]


def __getattr__(name: str) -> Any:
    if name in ("ApiError", "ControlPlaneClient"):
        from mallard import client

        return getattr(client, name)
    if name == "FeatureStore":
        from mallard.feature_store import FeatureStore

        return FeatureStore
    if name == "enrich":
        from mallard.enrichment import enrich

        return enrich
    if name in _FEATURE_NAMES:
        from mallard import features

        return getattr(features, name)
    raise AttributeError(f"module 'mallard' has no attribute {name!r}")
