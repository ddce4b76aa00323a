"""Builds through the real agent process and control plane: `build.run` and `build.cancel` over the
mTLS link, and an agent killed (-9) mid-build whose build the control plane then sees FAILED."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.data_plane_agent.builds.helpers import SLOW_BUILD, SLOW_BUILD_OUTPUT, churn_model
from tests.helpers.servers import wait_for
from tests.helpers.stack import AgentProcess, ControlPlane
from tests.helpers.wired_stack import cli_env

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    cp: ControlPlane
    agent: AgentProcess
    env: dict[str, str]

    def mallard(self, *args: str) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "mallard", *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 0, f"mallard {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        return json.loads(result.stdout)

    def build(self, build_id: str) -> dict[str, Any]:
        with self.cp.client() as api:
            found: dict[str, Any] = api.get(f"/builds/{build_id}").json()
        return found


@pytest.fixture
def stack(sqlite_url: str, tmp_path: Path, pip_cache: Path) -> Iterator[Stack]:
    cp = ControlPlane(database_url=sqlite_url, home=tmp_path / "cp")
    cp.prepare()
    cp.start_api()
    cp.start_gateway()
    cp.bootstrap()
    with cp.client() as api:
        token = api.post("/join-tokens", json={"name": "edge", "ttl_seconds": 600}).json()["token"]
    agent_home = tmp_path / "agent"
    (agent_home / "cache").mkdir(parents=True)
    (agent_home / "cache" / "pip").symlink_to(pip_cache)  # as a long-lived agent would have it
    agent = AgentProcess(cp, agent_home, join_token=token)
    agent.start()
    agent_id = agent.wait_enrolled()
    with cp.client() as api:
        wait_for(lambda: api.get(f"/agents/{agent_id}").json()["status"] == "online", timeout=30, what="online")
    stack = Stack(cp, agent, cli_env(cp, agent, tmp_path))
    stack.mallard("projects", "create", "retention")
    stack.mallard("models", "create", "churn", "--project", "retention")
    yield stack
    cp.stop()


def _slow_project(tmp_path: Path) -> Path:
    from mallard.scaffold import init_project

    project = tmp_path / "churn"
    init_project(project, name="churn")
    (project / "main" / "model.py").write_text(churn_model(SLOW_BUILD))
    return project


def _training(stack: Stack, build_id: str) -> bool:
    phases = stack.build(build_id)["phases"]
    return any(p["phase"] == "train" and p["state"] == "started" for p in phases)


def test_cancel_reaches_the_agent_over_the_link(stack: Stack, tmp_path: Path) -> None:
    created = stack.mallard("models", "build", str(_slow_project(tmp_path)), "--model", "churn")
    build_id = created["id"]
    wait_for(lambda: _training(stack, build_id), timeout=600, interval=0.5, what="training to start")
    stack.mallard("builds", "cancel", build_id)
    wait_for(lambda: stack.build(build_id)["status"] == "CANCELLED", timeout=30, what="CANCELLED")
    build = stack.build(build_id)
    assert build["failed_phase"] == "train"
    assert build["phases"][-1]["phase"] == "train" and build["phases"][-1]["state"] == "cancelled"


def _training_output_logged(stack: Stack, build_id: str) -> bool:
    # The train phase is reported started before the step has printed anything.
    log = stack.agent.home / "builds" / "logs" / f"{build_id}.log"
    return log.exists() and SLOW_BUILD_OUTPUT in log.read_bytes()


def test_a_build_whose_agent_was_killed_is_failed_when_the_agent_comes_back(stack: Stack, tmp_path: Path) -> None:
    created = stack.mallard("models", "build", str(_slow_project(tmp_path)), "--model", "churn")
    build_id = created["id"]
    wait_for(lambda: _training(stack, build_id), timeout=600, interval=0.5, what="training to start")
    wait_for(lambda: _training_output_logged(stack, build_id), timeout=60, interval=0.2, what="the train step's output")
    assert stack.agent.proc is not None
    stack.agent.proc.kill9()
    stack.agent.join_token = ""
    stack.agent.start()  # same home, same identity
    wait_for(lambda: stack.build(build_id)["status"] == "FAILED", timeout=60, what="FAILED after the restart")
    build = stack.build(build_id)
    assert build["failed_phase"] == "train"
    assert "agent restarted during the build" in build["error_summary"]
    # The data plane agrees, and its log says what happened.
    from mallard.client import ControlPlaneClient
    from mallard.config import Profile
    from mallard.dataplane import DataPlaneClient

    profile = Profile(api_url=stack.cp.api_url, api_key=stack.cp.api_key, data_plane_url=stack.agent.data_plane_url)
    with ControlPlaneClient(profile) as cp, DataPlaneClient(cp) as dp:
        local = dp.build(build_id)
        text, _, status = dp.logs(build_id)
    assert local is not None and local["status"] == "FAILED" and status == "FAILED"
    assert SLOW_BUILD_OUTPUT in text and b"agent restarted during the build" in text
