"""The serving integration through the SDK: a model's schema declares feature-store inputs by
entity key, and `schema.enrich(frame, lookup)` adds them from the online store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import mallard
from tests.helpers.feature_repo import DAYS, materialized_service, rating, trips


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Any]:
    service = materialized_service(tmp_path)
    yield service
    service.shutdown()
    service.engine.close()


SCHEMA = mallard.ModelSchema(
    inputs=[mallard.Field("driver_id", "int"), mallard.Field("distance_km", "float")],
    outputs=[mallard.Field("eta_minutes", "float")],
    features=[
        mallard.FeatureRef("driver_stats:trips_today", type="int"),
        mallard.FeatureRef("driver_stats@1:rating", alias="driver_rating", type="float"),
    ],
    entity_keys=["driver_id"],
)


def test_enrich_adds_online_values_by_entity_key_with_one_lookup_per_set(service: Any) -> None:
    calls: list[tuple[str, int]] = []

    class Counting:
        def get_online(self, feature_set: str, keys: list, features: Any = None, version: Any = None) -> Any:
            calls.append((feature_set, len(keys)))
            return service.get_online(feature_set, keys, features, version)

    frame = pd.DataFrame({"driver_id": [4, 77, 2], "distance_km": [1.5, 2.0, 3.0]})
    enriched = SCHEMA.enrich(frame, Counting())
    last = DAYS - 1
    assert list(enriched.columns) == ["driver_id", "distance_km", "trips_today", "driver_rating"]
    assert enriched["trips_today"].dtype == "Int64"
    assert enriched["trips_today"].astype(object).where(enriched["trips_today"].notna(), None).tolist() == [
        trips(4, last),
        None,
        trips(2, last),
    ]
    assert enriched["driver_rating"].tolist()[0] == rating(4, last)
    assert calls == [("driver_stats", 3), ("driver_stats", 3)]  # latest and pinned v1 are two sets
    assert list(frame.columns) == ["driver_id", "distance_km"]  # the caller's frame is untouched
    SCHEMA.validate(enriched)


def test_enrich_refuses_missing_keys_and_clashing_columns(service: Any) -> None:
    with pytest.raises(mallard.SchemaError) as err:
        SCHEMA.enrich(pd.DataFrame({"distance_km": [1.0]}), service)
    assert err.value.field == "driver_id"
    with pytest.raises(mallard.SchemaError) as err:
        SCHEMA.enrich(pd.DataFrame({"driver_id": [1, None], "distance_km": [1.0, 2.0]}), service)
    assert err.value.field == "driver_id"
    with pytest.raises(mallard.SchemaError):
        mallard.enrich(
            pd.DataFrame({"driver_id": [1], "rating": [0.1]}),
            ["driver_stats:rating"],
            service,
            entity_keys=["driver_id"],
        )


def test_schemas_with_features_round_trip_and_check_themselves() -> None:
    again = mallard.ModelSchema.from_dict(SCHEMA.to_dict())
    assert again == SCHEMA
    assert list(SCHEMA.example(2).columns) == ["driver_id", "distance_km", "trips_today", "driver_rating"]
    plain = mallard.ModelSchema(inputs=[mallard.Field("x", "int")])
    assert "features" not in plain.to_dict()  # manifests of models without features are unchanged
    with pytest.raises(mallard.SchemaError):
        mallard.ModelSchema(inputs=[mallard.Field("x", "int")], features=[mallard.FeatureRef("s:f")])  # no entity_keys
    with pytest.raises(mallard.SchemaError):
        mallard.ModelSchema(inputs=[mallard.Field("x", "int")], features=[mallard.FeatureRef("s:x")], entity_keys=["x"])
    with pytest.raises(ValueError, match="SET:FEATURE"):
        mallard.FeatureRef("not a ref")


def test_the_gateway_enriches_arrow_tables_with_typed_columns(service: Any) -> None:
    import pyarrow as pa

    from data_plane_agent.features.enrich import enrich_table
    from shared.errors import InvalidInput

    table = pa.table({"driver_id": pa.array([2, 50], pa.int64()), "distance_km": pa.array([1.0, 2.0])})
    enriched = enrich_table(table, SCHEMA, service)
    assert enriched.column_names == ["driver_id", "distance_km", "trips_today", "driver_rating"]
    assert enriched.schema.field("trips_today").type == pa.int64()
    assert enriched.column("trips_today").to_pylist() == [trips(2, DAYS - 1), None]
    assert enriched.column("driver_rating").to_pylist() == [rating(2, DAYS - 1), None]
    plain = mallard.ModelSchema(inputs=[mallard.Field("driver_id", "int")])
    assert enrich_table(table, plain, service) is table
    with pytest.raises(InvalidInput) as err:
        enrich_table(pa.table({"distance_km": [1.0]}), SCHEMA, service)
    assert err.value.field == "driver_id"
