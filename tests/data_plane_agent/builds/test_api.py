"""The data-plane REST routes for contexts, builds, logs and artifacts, through the real app
(FastAPI TestClient) with JWTs signed like the control plane signs them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi.testclient import TestClient

from data_plane_agent.api.app import create_app
from data_plane_agent.builds import BuildManager
from data_plane_agent.link.client import LinkState
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore, context_key
from shared.jwt_tokens import sign
from tests.data_plane_agent.builds.conftest import ManagerFactory
from tests.data_plane_agent.builds.helpers import (
    TENANT,
    ScriptedBuilder,
    make_context,
    simple_project,
    spec,
    wait_final,
)

LIMIT = 64 * 1024


class Api:
    def __init__(self, client: TestClient, private_pem: bytes, manager: BuildManager) -> None:
        self.client = client
        self.private_pem = private_pem
        self.manager = manager

    def headers(self, *, tenant: str = TENANT, role: str = "member") -> dict[str, str]:
        token = sign(self.private_pem, subject="usr_1", tenant_id=tenant, role=role, ttl_seconds=300)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(tmp_path: Path, store: LocalObjectStore, outbox: Outbox, make_manager: ManagerFactory) -> Iterator[Api]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    home = AgentHome(tmp_path / "home")
    home.prepare()
    home.identity_file.write_text(json.dumps({"tenant_id": TENANT, "agent_id": "agt_1"}))
    home.jwt_public_key.write_bytes(public)
    manager = make_manager({"local": ScriptedBuilder()})
    app = create_app(home, LinkState(), store=store, builds=manager, max_context_bytes=LIMIT)
    with TestClient(app) as client:
        yield Api(client, private, manager)


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def test_context_upload_is_verified_and_content_addressed(api: Api, store: LocalObjectStore) -> None:
    body = os.urandom(20_000)
    digest = _digest(body)
    assert api.client.head(f"/v1/contexts/{digest}", headers=api.headers()).status_code == 404

    first = api.client.put(f"/v1/contexts/{digest}", content=body, headers=api.headers())
    assert first.status_code == 201
    assert first.json() == {"digest": digest, "size": len(body), "uri": "mallard-store://" + context_key(digest)}
    with store.open_read(context_key(digest)) as handle:
        assert handle.read() == body
    again = api.client.put(f"/v1/contexts/{digest}", content=iter([body[:5000], body[5000:]]), headers=api.headers())
    assert again.status_code == 200 and again.json()["size"] == len(body)
    assert api.client.head(f"/v1/contexts/{digest}", headers=api.headers()).status_code == 200


def test_a_context_whose_digest_does_not_match_is_refused_and_not_stored(api: Api, store: LocalObjectStore) -> None:
    body = b"the real archive"
    claimed = _digest(b"something else")
    response = api.client.put(f"/v1/contexts/{claimed}", content=body, headers=api.headers())
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "digest_mismatch" and error["field"] == "digest"
    assert error["message"].startswith(f"context digest mismatch: expected {claimed}, got {_digest(body)}")
    assert list(store.list()) == []
    assert list((Path(store.root).parent / "home" / "uploads").iterdir()) == []

    bad = api.client.put("/v1/contexts/md5:abc", content=body, headers=api.headers())
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "digest"


def test_an_oversized_context_is_refused_and_not_stored(api: Api, store: LocalObjectStore) -> None:
    body = b"x" * (LIMIT + 1)
    digest = _digest(body)
    declared = api.client.put(f"/v1/contexts/{digest}", content=body, headers=api.headers())
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "context_too_large"
    assert str(LIMIT) in declared.json()["error"]["message"]
    # Without a Content-Length (chunked), the limit is enforced while streaming.
    chunked = api.client.put(
        f"/v1/contexts/{digest}", content=iter([body[:40_000], body[40_000:]]), headers=api.headers()
    )
    assert chunked.status_code == 413
    assert list(store.list()) == []
    assert list((Path(store.root).parent / "home" / "uploads").iterdir()) == []


def test_uploads_need_a_valid_token_of_this_tenant_with_a_writing_role(api: Api) -> None:
    body = b"abc"
    url = f"/v1/contexts/{_digest(body)}"
    assert api.client.put(url, content=body).status_code == 401
    assert api.client.put(url, content=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.client.put(url, content=body, headers=api.headers(tenant="ten_other")).status_code == 403
    assert api.client.put(url, content=body, headers=api.headers(role="viewer")).status_code == 403
    assert api.client.get("/v1/builds/bld_1", headers=api.headers(tenant="ten_other")).status_code == 403
    assert api.client.get("/v1/builds/bld_1/logs").status_code == 401
    assert api.client.get(f"/v1/artifacts/{_digest(body)}", headers=api.headers(tenant="ten_other")).status_code == 403


def test_build_status_logs_and_artifact_download(api: Api, store: LocalObjectStore) -> None:
    digest = make_context(store, simple_project())
    api.manager.submit(spec("bld_api", digest))
    wait_final(api.manager, "bld_api")

    view = api.client.get("/v1/builds/bld_api", headers=api.headers()).json()
    assert view["status"] == "SUCCEEDED" and view["phase"] == "publish"
    assert set(view) >= {
        "build_id",
        "status",
        "phase",
        "phases",
        "error_summary",
        "artifact_digest",
        "artifact_uri",
        "image",
    }
    assert view["phases"][0]["phase"] == "fetch_context"
    assert set(view["phases"][0]) == {"phase", "state", "started_at", "finished_at"}

    logs = api.client.get("/v1/builds/bld_api/logs", headers=api.headers())
    assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/plain")
    assert logs.headers["x-build-status"] == "SUCCEEDED"
    assert int(logs.headers["x-log-offset"]) == len(logs.content) and b"build SUCCEEDED" in logs.content
    tail = api.client.get(f"/v1/builds/bld_api/logs?offset={len(logs.content) - 10}", headers=api.headers())
    assert tail.content == logs.content[-10:] and tail.headers["x-log-offset"] == str(len(logs.content))
    end = api.client.get(f"/v1/builds/bld_api/logs?offset={len(logs.content)}", headers=api.headers())
    assert end.content == b"" and end.headers["x-log-offset"] == str(len(logs.content))

    artifact = api.client.get(f"/v1/artifacts/{view['artifact_digest']}", headers=api.headers())
    assert artifact.status_code == 200 and artifact.headers["content-type"] == "application/gzip"
    assert _digest(artifact.content) == view["artifact_digest"]

    assert api.client.get("/v1/builds/bld_nope", headers=api.headers()).status_code == 404
    assert api.client.get("/v1/builds/bld_nope/logs", headers=api.headers()).status_code == 404
    missing = api.client.get(f"/v1/artifacts/{_digest(b'none')}", headers=api.headers())
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "digest"
