"""`mallard models init` -> `build` on the embedded stack: a real scikit-learn model built by the agent.

Also proves data locality (every message crossing the agent link during the build is metadata)
and isolation (another tenant can neither see, follow, cancel nor download the build).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import wait_for
from tests.helpers.stack import AgentProcess, ControlPlane
from tests.helpers.wired_stack import run_mallard, start_wired_stack

pytestmark = pytest.mark.slow
CONTEXT_MARKER = "context-marker-5f1e0c"  # a file's content that must never cross the link


@dataclass
class Stack:
    cp: ControlPlane
    agent: AgentProcess
    wire: Path
    env: dict[str, str]
    s3_bucket: str | None = None
    s3_endpoint: str | None = None

    def mallard(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return run_mallard(self.env, *args, check=check, timeout=timeout)


@pytest.fixture(params=["local-store", "s3-store"])
def stack(request: pytest.FixtureRequest, sqlite_url: str, tmp_path: Path) -> Iterator[Stack]:
    """The embedded stack; the agent keeps contexts, logs and artifacts in a directory or in S3."""
    if request.param == "s3-store":
        from tests.data_plane_agent.storage.s3_server import CREDENTIALS, s3_server

        with s3_server() as server:
            bucket = server.create_bucket_with(CREDENTIALS)
            agent_env = {
                **CREDENTIALS,
                "AWS_DEFAULT_REGION": server.region,
                "MALLARD_AGENT_STORE_URL": f"s3://{bucket}/agents/edge",
                "MALLARD_AGENT_S3_ENDPOINT_URL": server.endpoint_url,
                "MALLARD_AGENT_S3_REGION": server.region,
            }
            for built in _stack(sqlite_url, tmp_path, agent_env):
                built.s3_bucket, built.s3_endpoint = bucket, server.endpoint_url
                yield built
    else:
        # 2 MiB contexts at most, so the oversized-context test needs no huge upload.
        yield from _stack(sqlite_url, tmp_path, {"MALLARD_AGENT_MAX_CONTEXT_BYTES": str(2 * 1024 * 1024)})


def _stack(sqlite_url: str, tmp_path: Path, agent_env: dict[str, str]) -> Iterator[Stack]:
    started = start_wired_stack(sqlite_url, tmp_path, agent_env)
    yield Stack(started.cp, started.agent, started.wire, started.env)
    started.cp.stop()


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize(
    ("stack", "builder"),
    [("local-store", "local"), ("s3-store", "local"), ("local-store", "docker")],
    indirect=["stack"],
)
def test_init_build_load_reproduces_predictions(stack: Stack, builder: str, tmp_path: Path) -> None:
    if builder == "docker":
        _require_docker()
    project = tmp_path / "churn"
    stack.mallard("models", "init", str(project), "--name", "churn")
    (project / "main" / "notes.txt").write_text(CONTEXT_MARKER + "\n")
    stack.mallard("projects", "create", "retention")
    stack.mallard("models", "create", "churn", "--project", "retention")

    done = stack.mallard(
        "models",
        "build",
        str(project),
        "--model",
        "churn",
        "--builder",
        builder,
        "--param",
        "C=0.5",
        "--tag",
        "e2e",
        "--follow",
        "--json",
    )
    build = json.loads(done.stdout)
    assert build["status"] == "SUCCEEDED", build
    assert build["params"]["C"] == "0.5" and "accuracy" in build["metrics"]
    assert [p["phase"] for p in build["phases"] if p["state"] == "succeeded"] == [
        "fetch_context",
        "resolve_dependencies",
        "train",
        "test",
        "package",
        "publish",
    ]
    digest = build["artifact_digest"]
    if builder == "docker":
        import docker

        client = docker.from_env()
        assert build["image"], build
        image = client.images.get(build["image"])  # the trained state is baked into this image
        assert build["image"] == f"mallard-build:{build['id']}" and image.id
        client.images.remove(build["image"], force=True)
        client.close()
    else:
        assert build["image"] is None
    assert digest.startswith("sha256:")
    assert build["artifact_uri"] == "mallard-store://artifacts/sha256/" + digest.split(":")[1] + ".tar.gz"

    listed = json.loads(
        stack.mallard("builds", "list", "--model", "churn", "--metric", "accuracy>0", "--tag", "e2e", "--json").stdout
    )
    assert [b["id"] for b in listed] == [build["id"]]
    full_log = stack.mallard("builds", "logs", build["id"]).stdout
    assert "train" in full_log and len(full_log) > 200

    # Download the artifact from the data plane and load it: same predictions as training here.
    from mallard.client import ControlPlaneClient
    from mallard.config import Profile
    from mallard.dataplane import DataPlaneClient

    profile = Profile(api_url=stack.cp.api_url, api_key=stack.cp.api_key, data_plane_url=stack.agent.data_plane_url)
    with ControlPlaneClient(profile) as cp, DataPlaneClient(cp) as dp:
        archive = dp.download_artifact(digest, tmp_path / "artifact.tar.gz")
    import hashlib

    assert "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest() == digest  # content-addressed
    unpacked = tmp_path / "artifact"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    check = subprocess.run(
        [sys.executable, "-c", _REPRODUCE, str(unpacked / "model"), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
        env=stack.env,
    )
    assert check.returncode == 0, check.stderr[-3000:]
    assert check.stdout.strip() == "same predictions"

    hex_digest = digest.split(":")[1]
    local_copy = stack.agent.home / "store" / "artifacts" / "sha256" / f"{hex_digest}.tar.gz"
    if stack.s3_bucket:
        import boto3

        from tests.data_plane_agent.storage.s3_server import CREDENTIALS

        s3 = boto3.client(
            "s3",
            endpoint_url=stack.s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.s3_bucket)["Contents"]]
        assert f"agents/edge/artifacts/sha256/{hex_digest}.tar.gz" in keys
        assert any(k.startswith("agents/edge/contexts/sha256/") for k in keys)
        assert f"agents/edge/logs/builds/{build['id']}.log" in keys
        assert not local_copy.exists()
    else:
        assert local_copy.read_bytes() == archive.read_bytes()

    _assert_only_metadata_crossed(stack, full_log, archive.read_bytes())
    _assert_other_tenant_cannot_reach(stack, build["id"], digest)


def _require_docker() -> None:
    from data_plane_agent.builds.docker import docker_reachable
    from data_plane_agent.settings import AgentSettings
    from tests.helpers.servers import skip_or_fail

    reachable, why = docker_reachable()
    if not reachable:
        skip_or_fail(f"no Docker engine reachable ({why}); start dockerd (see .ci/run)")
    import docker

    client = docker.from_env()
    try:
        client.images.get(AgentSettings.model_fields["docker_base_image"].default)
    except docker.errors.ImageNotFound:
        skip_or_fail("the base image mallard-base:bookworm is missing (see .ci/run)")
    finally:
        client.close()


_REPRODUCE = """
import sys
from pathlib import Path
import pandas as pd
from mallard.state import load_model
from mallard.project import load_project

loaded = load_model(sys.argv[1])
project = load_project(Path(sys.argv[2]))
sys.path[:0] = [str(project.root), str(project.root / "main")]
module_name, class_name = project.model_class.split(":")
import importlib
cls = getattr(importlib.import_module(module_name), class_name)
fresh = cls()
fresh.params = {**project.config.build.params, "C": "0.5"}
fresh.build()
fresh.initialize_model()
example = loaded.schema().example(25)
a, b = loaded.predict(example), fresh.predict(example)
pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
print("same predictions")
"""


def _assert_only_metadata_crossed(stack: Stack, full_log: str, artifact: bytes) -> None:
    records = [json.loads(line) for line in stack.wire.read_text().splitlines()]
    build_messages = [r for r in records if "build" in json.dumps(r["message"])]
    assert build_messages, "no build traffic was captured"
    text = "\n".join(s for r in records for s in strings(r["message"]))
    assert CONTEXT_MARKER not in text  # no context file content
    long_log_lines = [line for line in full_log.splitlines() if len(line.strip()) > 50]
    assert long_log_lines and not [line for line in long_log_lines if line.strip() in text]  # no full log
    assert artifact[:64].hex() not in text  # no model bytes
    for record in records:
        event = record["message"].get("event")
        if event and event["type"].startswith("build."):
            payload = json.loads(event["payloadJson"])
            assert len(payload.get("error_summary") or "") <= 500
            assert set(payload) <= {
                "build_id",
                "phase",
                "state",
                "at_unix_ms",
                "status",
                "failed_phase",
                "error_summary",
                "params",
                "metrics",
                "artifact_digest",
                "artifact_uri",
                "image",
                "duration_seconds",
            }


def _assert_other_tenant_cannot_reach(stack: Stack, build_id: str, digest: str) -> None:
    with stack.cp.client() as admin:
        other = admin.post("/tenants", json={"name": "globex", "admin_email": "admin@globex.example"}).json()
    other_key = other["api_key"]["key"]
    with stack.cp.client(other_key) as api:
        assert api.get(f"/builds/{build_id}").status_code == 404
        assert api.post(f"/builds/{build_id}/cancel").status_code == 404
        assert build_id not in api.get("/builds").text
        jwt = api.post("/data-plane/token").json()["token"]
    headers = {"Authorization": f"Bearer {jwt}"}
    base = stack.agent.data_plane_url
    for path in (f"/v1/builds/{build_id}", f"/v1/builds/{build_id}/logs", f"/v1/artifacts/{digest}"):
        response = httpx.get(base + path, headers=headers, timeout=10)
        assert response.status_code == 403, (path, response.text)


@pytest.mark.parametrize("stack", ["local-store"], indirect=True)
def test_bad_contexts_fail_clearly(stack: Stack, tmp_path: Path) -> None:
    """A build whose context never reached the data plane fails at fetch_context, naming it; a
    context over the agent's limit is refused at upload with a clear error and no build."""
    project = tmp_path / "churn"
    stack.mallard("models", "init", str(project), "--name", "churn")
    stack.mallard("projects", "create", "retention")
    stack.mallard("models", "create", "churn", "--project", "retention")
    with stack.cp.client() as api:
        agent_id = api.get("/agents").json()[0]["id"]
        missing = "sha256:" + "0" * 64
        build = api.post("/models/churn/builds", json={"agent_id": agent_id, "context_digest": missing})
        assert build.status_code == 201, build.text
        build_id = build.json()["id"]

        def final() -> dict[str, Any] | None:
            row: dict[str, Any] = api.get(f"/builds/{build_id}").json()
            return row if row["status"] in ("SUCCEEDED", "FAILED", "CANCELLED") else None

        failed = wait_for(final, timeout=60, what="the build with a missing context to finish")
        assert isinstance(failed, dict)
        assert failed["status"] == "FAILED" and failed["failed_phase"] == "fetch_context", failed
        assert "0" * 12 in (failed["error_summary"] or ""), failed

    (project / "main" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # incompressible
    big = stack.mallard("models", "build", str(project), "--model", "churn", check=False)
    assert big.returncode == 1
    assert "too large" in big.stderr or "larger than" in big.stderr, big.stderr
    with stack.cp.client() as api:
        assert [b["id"] for b in api.get("/builds").json()] == [build_id]  # no build for the refused upload
