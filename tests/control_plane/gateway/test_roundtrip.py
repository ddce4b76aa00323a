"""Enroll + connect + heartbeat + describe, through the REST API, the gateway and a real agent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import repo_root, wait_for
from tests.helpers.stack import AgentProcess, ControlPlane

pytestmark = pytest.mark.slow


def test_enroll_connect_heartbeat_describe(control_plane: ControlPlane, tmp_path: Path) -> None:
    cp = control_plane
    cp.start_api()
    cp.start_gateway()
    cp.bootstrap()
    with cp.client() as api:
        token = api.post("/join-tokens", json={"name": "edge-1", "ttl_seconds": 600})
        assert token.status_code == 201, token.text
        agent = AgentProcess(cp, tmp_path / "agent", join_token=token.json()["token"])
        agent.start()
        agent_id = agent.wait_enrolled()

        # The key never left the agent and is private to its owner.
        assert (agent.home / "agent.key").stat().st_mode & 0o777 == 0o600

        def online() -> dict | None:
            data = api.get(f"/agents/{agent_id}").json()
            return data if data["status"] == "online" else None

        first = wait_for(online, timeout=30, what="agent online")
        assert isinstance(first, dict)
        assert first["name"] == "edge-1" and first["version"] and first["cert_expires_at"]
        assert first["data_plane_url"] == agent.data_plane_url
        # Heartbeats keep moving last_seen_at forward.
        seen_before = datetime.fromisoformat(first["last_seen_at"].replace("Z", "+00:00"))
        wait_for(
            lambda: (
                datetime.fromisoformat(api.get(f"/agents/{agent_id}").json()["last_seen_at"].replace("Z", "+00:00"))
                > seen_before
            ),
            timeout=10,
            what="a heartbeat to advance last_seen_at",
        )

        started = time.perf_counter()
        described = api.post(f"/agents/{agent_id}/describe", params={"timeout": 10})
        assert described.status_code == 200, described.text
        command = described.json()
        assert command["state"] == "succeeded", command
        result = command["result"]
        assert result["agent_id"] == agent_id
        assert result["tenant_id"] == agent.identity["tenant_id"]
        assert "command.describe" in result["capabilities"]
        assert result["host"]["cpu_count"] >= 1 and result["host"]["python"]
        assert time.perf_counter() - started < 10

        # The same through the CLI, configured only by environment variables.
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
        env |= {
            "MALLARD_API_URL": cp.api_url,
            "MALLARD_API_KEY": cp.api_key,
            "MALLARD_CONFIG": str(tmp_path / "no-config.json"),
            "PYTHONPATH": str(repo_root()),
        }
        cli = subprocess.run(
            [sys.executable, "-m", "mallard", "agents", "describe", agent_id, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        assert f'"agent_id": "{agent_id}"' in cli.stdout

        # The data plane verifies the control plane's short-lived JWT offline.
        jwt = api.post("/data-plane/token").json()["token"]
        who = httpx.get(agent.data_plane_url + "/v1/whoami", headers={"Authorization": f"Bearer {jwt}"}, timeout=5)
        assert who.status_code == 200, who.text
        assert who.json()["tenant_id"] == agent.identity["tenant_id"]
        denied = httpx.get(agent.data_plane_url + "/v1/whoami", headers={"Authorization": "Bearer nope"}, timeout=5)
        assert denied.status_code == 401
        assert "invalid data-plane token" in denied.json()["error"]["message"]

    # SIGTERM: the agent stops cleanly and the control plane sees it go offline.
    assert agent.proc is not None
    assert agent.proc.terminate(timeout=15) == 0
    with cp.client() as api:
        wait_for(
            lambda: api.get(f"/agents/{agent_id}").json()["status"] == "offline",
            timeout=10,
            what="agent offline after SIGTERM",
        )
