"""Serving integration of the feature store: a model whose schema declares feature-store inputs
gets them looked up online by entity key before its predict runs (real replica, real feature
service over SQLite, materialized from Parquet)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from data_plane_agent.features.enrich import enrich_table
from data_plane_agent.storage import LocalObjectStore
from shared.errors import InvalidInput, Unavailable
from tests.data_plane_agent.serving.helpers import apply_spec, state_of, toy_artifact, toy_engine, until, variation
from tests.helpers.feature_repo import DAYS, materialized_service, trips

FEATURE_MODEL = """
import pandas as pd

import mallard


class ToyModel(mallard.Model):
    def schema(self):
        return mallard.ModelSchema(
            inputs=[mallard.Field("driver_id", "int"), mallard.Field("bonus", "float")],
            outputs=[mallard.Field("score", "float")],
            features=[mallard.FeatureRef("driver_stats:trips_today", type="int")],
            entity_keys=["driver_id"],
        )

    def predict(self, df):
        # trips_today comes from the online store, not from the request
        return pd.DataFrame({"score": df["trips_today"].astype("float64").fillna(-1.0) + df["bonus"]})
"""


async def test_the_engine_adds_online_features_by_entity_key_before_predict(
    tmp_path: Path, store: LocalObjectStore
) -> None:
    features = materialized_service(tmp_path / "features")
    digest = toy_artifact(store, tmp_path, "bld_f", source=FEATURE_MODEL)
    engine, records = toy_engine(tmp_path / "home", store, None)
    await engine.start()
    try:
        await engine.apply(apply_spec("dep_f", [variation("default", "bld_f", digest)]))
        await until(lambda: state_of(engine, "dep_f") == "RUNNING", what="RUNNING")
        request = pa.table({"driver_id": pa.array([4, 999], pa.int64()), "bonus": [0.5, 0.5]})

        with pytest.raises(Unavailable, match="feature store"):
            await engine.predict("toy", request, request_id="no-store")  # no enricher: said, not guessed

        engine.enricher = lambda schema, table: enrich_table(table, schema, features)
        outcome = await engine.predict("toy", request, request_id="r1")
        # driver 4's latest trips_today, plus the bonus; an unknown driver has no features (null -> -1)
        assert outcome.outputs.column("score").to_pylist() == [trips(4, DAYS - 1) + 0.5, -0.5]
        assert '"trips_today"' in records[-1].inputs_json  # the lake sees the frame the model saw

        with pytest.raises(InvalidInput) as missing:
            await engine.predict(
                "toy", pa.table({"driver_id": pa.array([None], pa.int64()), "bonus": [1.0]}), request_id="r2"
            )
        assert missing.value.field == "driver_id"
    finally:
        await engine.shutdown(5)
        features.shutdown()
        features.engine.close()
