"""Object-store fixtures shared by the storage and lake tests: a real S3-compatible server (moto)
for the session, and a `store` parametrized over a local directory and that server.

Import both names into a conftest.py to use them: `from tests.helpers.object_stores import s3, store`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
    """The same contract over a directory and over a real S3-compatible server (moto)."""
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "store")
        return
    server: S3Server = request.getfixturevalue("s3")
    s3_store = S3ObjectStore(
        server.create_bucket(), "tenant-a/agent-1", endpoint_url=server.endpoint_url, region=server.region
    )
    yield s3_store
    s3_store.close()
