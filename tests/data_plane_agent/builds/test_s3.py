"""Contexts, logs and artifacts in S3 (a real S3-compatible server): upload through the data-plane
API, a real local build reading and writing the bucket, and downloads streamed back from it."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from data_plane_agent.api.app import create_app
from data_plane_agent.builds import LocalBuilder
from data_plane_agent.link.client import LinkState
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import artifact_key, build_log_key, context_key
from data_plane_agent.storage.s3 import S3ObjectStore
from shared.jwt_tokens import sign
from tests.data_plane_agent.builds.conftest import ManagerFactory
from tests.data_plane_agent.builds.helpers import TENANT, events, spec, wait_final
from tests.data_plane_agent.storage.s3_server import S3Server

pytestmark = pytest.mark.slow


@pytest.fixture
def bucket_store(s3: S3Server) -> Iterator[S3ObjectStore]:
    store = S3ObjectStore(s3.create_bucket(), "agents/agt_1", endpoint_url=s3.endpoint_url, region=s3.region)
    yield store
    store.close()


def test_a_build_through_s3_from_upload_to_download(
    tmp_path: Path,
    bucket_store: S3ObjectStore,
    outbox: Outbox,
    make_manager: ManagerFactory,
    local_builder: LocalBuilder,
) -> None:
    from mallard.packing import pack_context
    from mallard.scaffold import init_project

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    home = AgentHome(tmp_path / "home")
    home.prepare()
    home.identity_file.write_text(json.dumps({"tenant_id": TENANT, "agent_id": "agt_1"}))
    home.jwt_public_key.write_bytes(public)
    token = sign(private, subject="usr_1", tenant_id=TENANT, role="member", ttl_seconds=300)
    auth = {"Authorization": f"Bearer {token}"}

    manager = make_manager({"local": local_builder}, object_store=bucket_store)
    app = create_app(home, LinkState(), store=bucket_store, builds=manager)
    init_project(tmp_path / "churn", name="churn")
    packed = pack_context(tmp_path / "churn", tmp_path / "churn.tar.gz")
    with TestClient(app) as client:
        uploaded = client.put(f"/v1/contexts/{packed.digest}", content=packed.path.read_bytes(), headers=auth)
        assert uploaded.status_code == 201, uploaded.text
        assert bucket_store.exists(context_key(packed.digest))
        raw = bucket_store.client.list_objects_v2(Bucket=bucket_store.bucket)["Contents"]
        assert [o["Key"] for o in raw] == [f"agents/agt_1/{context_key(packed.digest)}"]

        manager.submit(spec("bld_s3", packed.digest))
        assert wait_final(manager, "bld_s3", timeout=900) == "SUCCEEDED"
        finished = events(outbox, "bld_s3")[-1][1]
        assert bucket_store.exists(artifact_key(finished["artifact_digest"]))
        assert bucket_store.exists(build_log_key("bld_s3"))

        logs = client.get("/v1/builds/bld_s3/logs?offset=0", headers=auth)
        assert logs.headers["x-build-status"] == "SUCCEEDED" and b"build SUCCEEDED" in logs.content
        artifact = client.get(f"/v1/artifacts/{finished['artifact_digest']}", headers=auth)
        assert artifact.status_code == 200
        assert "sha256:" + hashlib.sha256(artifact.content).hexdigest() == finished["artifact_digest"]
        with bucket_store.open_read(build_log_key("bld_s3")) as handle:
            assert handle.read() == logs.content
    assert io.BytesIO(artifact.content).read(2) == b"\x1f\x8b"
