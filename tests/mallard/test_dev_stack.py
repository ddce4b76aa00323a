"""`mallard dev up/down` and the CLI against the stack it starts: real processes, real ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mallard.dev import processes
from tests.helpers.servers import repo_root

pytestmark = pytest.mark.slow


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "dev"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
        self.env |= {
            "MALLARD_CONFIG": str(tmp_path / "config.json"),
            "MALLARD_DEV_HOME": str(self.home),
            "PYTHONPATH": str(repo_root()),
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "mallard", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        if check:
            assert result.returncode == 0, f"mallard {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    yield runner
    runner("dev", "down", check=False)


def test_dev_up_gives_a_working_stack_and_down_leaves_nothing_running(cli: Cli, tmp_path: Path) -> None:
    info = cli.json("dev", "up", "--detach")
    assert isinstance(info, dict)
    for key in ("api_url", "api_key", "data_plane_url", "gateway"):
        assert info[key], key
    dev_json = json.loads((cli.home / "dev.json").read_text())
    assert dev_json["api_key"] == info["api_key"]
    assert (cli.home / "dev.json").stat().st_mode & 0o777 == 0o600
    profile = json.loads((tmp_path / "config.json").read_text())
    assert profile["current"] == "dev" and profile["profiles"]["dev"]["api_url"] == info["api_url"]

    # Plain CLI commands now talk to this stack through the profile.
    agents = cli.json("agents", "list")
    assert isinstance(agents, list)
    assert [(a["id"], a["status"]) for a in agents] == [(info["agent_id"], "online")]
    described = cli.json("agents", "describe", info["agent_id"])
    assert isinstance(described, dict) and described["agent_id"] == info["agent_id"]
    assert described["data_plane_url"] == info["data_plane_url"]

    created = cli.json("projects", "create", "churn", "--description", "demo")
    assert isinstance(created, dict) and created["name"] == "churn"
    projects = cli.json("projects", "list")
    assert isinstance(projects, list) and [p["name"] for p in projects] == ["churn"]
    duplicate = cli("projects", "create", "churn", check=False)
    assert duplicate.returncode == 1 and "churn" in duplicate.stderr

    token = cli.json("agents", "token", "create", "--name", "edge-2", "--ttl", "10m")
    assert isinstance(token, dict) and token["token"].startswith("mjt.")
    tokens = cli.json("agents", "token", "list")
    assert isinstance(tokens, list)
    assert {t["name"]: t["status"] for t in tokens} == {"local-agent": "redeemed", "edge-2": "active"}
    assert all("token" not in t for t in tokens)  # secrets are shown once, never listed

    bad_ttl = cli("agents", "token", "create", "--name", "x", "--ttl", "banana", check=False)
    assert bad_ttl.returncode == 2 and "not a duration" in bad_ttl.stderr
    missing = cli("agents", "describe", "agt_doesnotexist", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr

    # A second `up` finds the running stack and changes nothing.
    again = cli.json("dev", "up", "--detach")
    assert isinstance(again, dict) and again["api_url"] == info["api_url"] and again["api_key"] == info["api_key"]

    procs = processes.load(cli.home / "pids.json")
    assert sorted(p.name for p in procs) == ["agent", "api", "gateway", "scheduler"]
    cli("dev", "down")
    assert not any(processes.is_alive(p) for p in procs)
    port = int(info["api_url"].rsplit(":", 1)[1])
    assert not processes.tcp_open(port)
    assert not processes.tcp_open(int(info["gateway"].rsplit(":", 1)[1]))
    after = cli("agents", "list", check=False)
    assert after.returncode == 1 and "mallard dev up" in after.stderr

    # Up again on the same home: same tenant and agent identity, agent back online.
    third = cli.json("dev", "up", "--detach")
    assert isinstance(third, dict) and third["agent_id"] == info["agent_id"]
    assert third["tenant_id"] == info["tenant_id"]
    listed = cli.json("agents", "list")
    assert isinstance(listed, list) and [a["status"] for a in listed] == ["online"]
