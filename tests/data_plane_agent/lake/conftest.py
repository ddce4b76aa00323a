from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_plane_agent.lake import PredictionRecord
from data_plane_agent.storage import LocalObjectStore, ObjectStore
from data_plane_agent.storage.s3 import S3ObjectStore
from tests.data_plane_agent.storage.s3_server import CREDENTIALS, S3Server, s3_server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        with s3_server() as server:
            yield server


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """The lake over a directory and over a real S3-compatible server (moto)."""
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "store")
        return
    server: S3Server = request.getfixturevalue("s3")
    s3_store = S3ObjectStore(
        server.create_bucket(), "tenant-a/agent-1", endpoint_url=server.endpoint_url, region=server.region
    )
    yield s3_store
    s3_store.close()


def make_record(
    i: int,
    *,
    model: str = "churn",
    variation: str = "default",
    status: str = "ok",
    latency_ms: float = 2.0,
    shadow: bool = False,
    at_ms: int | None = None,
) -> PredictionRecord:
    return PredictionRecord(
        model=model,
        deployment_id="dep_1",
        variation=variation,
        build_id="bld_1",
        request_id=f"r{i}",
        timestamp_ms=at_ms if at_ms is not None else int(time.time() * 1000),
        latency_ms=latency_ms,
        status=status,
        shadow=shadow,
        rows=1,
        inputs_json=f'[{{"age": {i}, "plan": "pro"}}]',
        outputs_json=None if status != "ok" else f'[{{"churn_probability": {i / 1000}}}]',
        error=None if status == "ok" else "the model raised ValueError",
    )
