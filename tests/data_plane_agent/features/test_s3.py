"""The offline store and a batch source on S3 (a real S3-compatible server): materialization writes
date partitions to the bucket and historical retrieval reads them back."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_plane_agent.features import FeatureEngine, SqliteOnlineStore
from data_plane_agent.storage.s3 import S3ObjectStore
from mallard.features import Entity, Feature, FeatureSet, ParquetSource
from tests.data_plane_agent.storage.s3_server import CREDENTIALS, S3Server, s3_server

DAY0 = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        with s3_server() as server:
            mp.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
            mp.setenv("AWS_REGION", server.region)
            yield server


def test_materialize_and_retrieve_with_source_and_offline_store_on_s3(tmp_path: Path, s3: S3Server) -> None:
    bucket = s3.create_bucket()
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region)
    for day in range(2):
        buffer = io.BytesIO()
        pq.write_table(
            pa.table(
                {
                    "driver_id": pa.array([1, 2], pa.int64()),
                    "ts": pa.array([DAY0 + timedelta(days=day, hours=h) for h in (1, 2)], pa.timestamp("us", tz="UTC")),
                    "trips": pa.array([10 * day + 1, 10 * day + 2], pa.int64()),
                }
            ),
            buffer,
        )
        client.put_object(Bucket=bucket, Key=f"raw/stats/day={day}/part.parquet", Body=buffer.getvalue())
    store = S3ObjectStore(bucket, "agent-1", endpoint_url=s3.endpoint_url, region=s3.region)
    engine = FeatureEngine(tmp_path / "home", store, SqliteOnlineStore(tmp_path / "online.sqlite"), "tenant-a")
    driver = Entity("driver", keys={"driver_id": "int"})
    definition = FeatureSet(
        "stats",
        entity=driver,
        source=ParquetSource(f"s3://{bucket}/raw/stats"),
        timestamp="ts",
        features=[Feature("trips", "int")],
        ttl=timedelta(days=1),
    )
    engine.apply([driver, definition], project="p")
    for _ in range(2):  # twice over the same range: partitions are replaced, not duplicated
        result = engine.materialize("stats", project="p", start=DAY0, end=DAY0 + timedelta(days=2))
        assert result.source_rows == 4
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="agent-1/features/")["Contents"]]
    assert len(keys) == 2
    assert all(k.startswith("agent-1/features/tenant-a/p/stats/v1/date=2026-05-0") for k in keys)
    frame = pa.table(
        {
            "driver_id": [1, 2, 3],
            "event_timestamp": pa.array([DAY0 + timedelta(days=1, hours=5)] * 3, pa.timestamp("us", tz="UTC")),
        }
    )
    out = engine.get_historical(frame, ["stats:trips"], tmp_path / "out.parquet", project="p")
    assert pq.read_table(out.path).column("trips").to_pylist() == [11, 12, None]
    online = engine.get_online("stats", [{"driver_id": 1}], project="p", now=DAY0 + timedelta(days=1, hours=5))
    assert online[0]["trips"] == 11
    client.close()
    store.close()
