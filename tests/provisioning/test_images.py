"""`make images` on a real Docker engine, and the images run the way the Helm charts run them.

Needs dockerd and the base image mallard-base:bookworm (.ci/run provides both); without them the
tests skip on a developer machine and fail in CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import free_port, repo_root, skip_or_fail, wait_for

pytestmark = pytest.mark.slow

BASE_IMAGE = "mallard-base:bookworm"
VERSION = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["version"]
AGENT_IMAGE = f"mallard-agent:{VERSION}"
CONTROL_PLANE_IMAGE = f"mallard-control-plane:{VERSION}"
# What the charts' securityContext asks for, applied by hand.
AS_IN_THE_CHARTS = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "10001:10001"]


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def images() -> None:
    """`make images`, once for the module."""
    if shutil.which("docker") is None or docker("info").returncode != 0:
        skip_or_fail("no Docker engine reachable (.ci/run starts dockerd --bridge=none --iptables=false)")
    if docker("image", "inspect", BASE_IMAGE).returncode != 0:
        skip_or_fail(f"base image {BASE_IMAGE} is missing (.ci/run builds it with debootstrap)")
    built = subprocess.run(
        ["make", "images"], cwd=repo_root(), capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL
    )
    assert built.returncode == 0, f"make images failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Names of containers a test started; all are removed at the end, pass or fail."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "-f", name)


def test_make_images_builds_both_and_the_agent_prints_its_version(images: None) -> None:
    result = docker("run", "--rm", "--network", "host", AGENT_IMAGE, "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mallard-agent {VERSION}"
    result = docker("run", "--rm", "--network", "host", CONTROL_PLANE_IMAGE, "version")
    assert result.stdout.strip() == f"mallard-control-plane {VERSION}"
    for image in (AGENT_IMAGE, CONTROL_PLANE_IMAGE):
        [config] = json.loads(docker("image", "inspect", image).stdout)
        assert config["Config"]["User"] == "10001:10001"  # the charts' runAsUser
    [agent] = json.loads(docker("image", "inspect", AGENT_IMAGE).stdout)
    assert agent["Config"]["Entrypoint"] == ["mallard-agent"]


def test_control_plane_image_names_its_commands(images: None) -> None:
    usage = docker("run", "--rm", "--network", "none", CONTROL_PLANE_IMAGE, "help").stdout
    for command in ("api", "gateway", "worker", "beat", "scheduler", "migrate", "prepare", "worker-ping", "version"):
        assert f"\n  {command} " in usage, usage


def test_images_enroll_an_agent_like_the_charts_run_them(images: None, tmp_path: Path, containers: list[str]) -> None:
    """API, gateway and agent containers on loopback, read-only, no capabilities, uid 10001."""
    home, agent_home = tmp_path / "control-plane", tmp_path / "agent"
    for directory in (home, agent_home):
        directory.mkdir()
        shutil.chown(directory, 10001, 10001)  # what fsGroup does for a volume in Kubernetes
    api_port, link_port, enroll_port, data_port = free_port(), free_port(), free_port(), free_port()
    env = [
        "-e", "MALLARD_CP_HOME=/var/lib/mallard/control-plane",
        "-e", f"MALLARD_API_PORT={api_port}",
        "-e", f"MALLARD_GATEWAY_PORT={link_port}",
        "-e", f"MALLARD_GATEWAY_ENROLL_PORT={enroll_port}",
        "-e", 'MALLARD_GATEWAY_TLS_NAMES=["127.0.0.1","localhost"]',
        "-e", "MALLARD_HEARTBEAT_INTERVAL_MS=500",
    ]  # fmt: skip
    volumes = ["-v", f"{home}:/var/lib/mallard/control-plane", "--tmpfs", "/tmp"]
    run = ["run", "--network", "host", *AS_IN_THE_CHARTS, *volumes, *env]

    prepared = docker(*run, "--rm", CONTROL_PLANE_IMAGE, "prepare", timeout=180)  # the charts' init container
    assert prepared.returncode == 0, prepared.stderr
    assert (home / "pki" / "ca.crt").exists() and (home / "pki" / "jwt.key").exists()
    for process in ("api", "gateway"):
        name = f"mallard-test-{process}-{uuid.uuid4().hex[:8]}"
        containers.append(name)
        started = docker(*run, "-d", "--name", name, CONTROL_PLANE_IMAGE, process)
        assert started.returncode == 0, started.stderr
    api_url = f"http://127.0.0.1:{api_port}/api/v1"
    wait_for(lambda: httpx.get(f"{api_url}/health", timeout=1).status_code == 200, timeout=60, what="API health")
    key = httpx.post(f"{api_url}/bootstrap", json={"tenant": "acme", "email": "admin@acme.test"}).json()["api_key"]
    api = httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=10)
    token = api.post("/join-tokens", json={"name": "boxed-agent", "ttl_seconds": 600}).json()["token"]

    agent = f"mallard-test-agent-{uuid.uuid4().hex[:8]}"
    containers.append(agent)
    started = docker(
        "run", "-d", "--name", agent, "--network", "host", *AS_IN_THE_CHARTS,
        "-v", f"{agent_home}:/var/lib/mallard/agent", "--tmpfs", "/tmp",
        "-v", f"{home / 'pki' / 'ca.crt'}:/etc/mallard/control-plane-ca/ca.crt:ro",
        "-e", f"MALLARD_AGENT_CONTROL_PLANE=127.0.0.1:{link_port}",
        "-e", f"MALLARD_AGENT_ENROLL_ADDRESS=127.0.0.1:{enroll_port}",
        "-e", f"MALLARD_AGENT_JOIN_TOKEN={token}",
        "-e", "MALLARD_AGENT_CA_FILE=/etc/mallard/control-plane-ca/ca.crt",
        "-e", f"MALLARD_AGENT_DATA_PLANE_PORT={data_port}",
        AGENT_IMAGE,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr

    def agent_logs() -> str:
        return docker("logs", agent).stderr[-2000:]

    # The charts' probes: readiness GET /v1/ready on the data-plane port.
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{data_port}/v1/ready", timeout=1).status_code == 200,
        timeout=60,
        what=f"agent ready; logs:\n{agent_logs()}",
    )
    assert httpx.get(f"http://127.0.0.1:{data_port}/v1/health", timeout=1).json()["status"] == "ok"
    [enrolled] = api.get("/agents").json()
    assert enrolled["name"] == "boxed-agent"
    wait_for(lambda: api.get(f"/agents/{enrolled['id']}").json()["status"] == "online", timeout=30, what="online")
    assert api.get(f"/agents/{enrolled['id']}").json()["version"] == VERSION
    api.close()
