"""The embedded stack the CLI end-to-end tests drive: a control plane with the gateway's wire tap
on (every agent-link message in `wire.jsonl`), one enrolled agent that is online, and the
environment that points `python -m mallard` at both."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.servers import repo_root, wait_for
from tests.helpers.stack import AgentProcess, ControlPlane


@dataclass
class WiredStack:
    cp: ControlPlane
    agent: AgentProcess
    wire: Path
    env: dict[str, str]


def cli_env(cp: ControlPlane, agent: AgentProcess, tmp_path: Path) -> dict[str, str]:
    """The environment a `mallard` CLI process needs to reach this control plane and agent (no
    MALLARD_* variable of the caller's own leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
    return env | {
        "MALLARD_API_URL": cp.api_url,
        "MALLARD_API_KEY": cp.api_key,
        "MALLARD_DATA_PLANE_URL": agent.data_plane_url,
        "MALLARD_CONFIG": str(tmp_path / "config.json"),
        "PYTHONPATH": str(repo_root()),
    }


def start_wired_stack(sqlite_url: str, tmp_path: Path, agent_env: dict[str, str] | None = None) -> WiredStack:
    """Start the API and gateway (wire tap at tmp_path/wire.jsonl), enroll an agent and wait until it is online."""
    wire = tmp_path / "wire.jsonl"
    cp = ControlPlane(database_url=sqlite_url, home=tmp_path / "cp", extra_env={"MALLARD_WIRE_LOG": str(wire)})
    cp.prepare()
    cp.start_api()
    cp.start_gateway()
    cp.bootstrap()
    with cp.client() as api:
        token = api.post("/join-tokens", json={"name": "edge", "ttl_seconds": 600}).json()["token"]
        agent = AgentProcess(cp, tmp_path / "agent", join_token=token, extra_env=dict(agent_env or {}))
        agent.start()
        agent_id = agent.wait_enrolled()
        wait_for(lambda: api.get(f"/agents/{agent_id}").json()["status"] == "online", timeout=30, what="online")
    return WiredStack(cp, agent, wire, cli_env(cp, agent, tmp_path))


def run_mallard(
    env: dict[str, str], *args: str, check: bool = True, timeout: float
) -> subprocess.CompletedProcess[str]:
    """`python -m mallard ARGS` in `env`; with `check`, assert it exited 0 (showing the output if not)."""
    result = subprocess.run(
        [sys.executable, "-m", "mallard", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert result.returncode == 0, f"mallard {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result
