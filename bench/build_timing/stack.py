"""The stack the build benchmark drives: the control-plane API and gateway, and agents that each
enroll with a join token into their own, fresh home (an empty environment cache: a cold start).

The same processes `mallard dev up` starts, minus the scheduler (it only expires build leases,
which no build here comes near). They are started here rather than with `mallard dev up` so that
each agent gets its own home and environment (`MALLARD_AGENT_DOCKER_BASE_IMAGE`), which
`dev up` does not pass through, and so that every process dies with the benchmark.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.fleet.processes import Child, Children, child_env, free_port

HEARTBEAT_MS = 2000  # what `mallard dev up` configures


def wait_until(condition: Callable[[], object], what: str, child: Child, timeout: float = 60.0) -> None:
    """Poll `condition` until it is true; fail with the child's log if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (httpx.HTTPError, OSError, KeyError, ValueError):
            pass
        if not child.alive():
            raise RuntimeError(f"{child.name} exited while waiting for {what}; its log ends with:\n{child.tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}; {child.name}'s log: {child.log}")


@dataclass
class Agent:
    """One enrolled agent process with its own home (caches, store) and data-plane port."""

    name: str
    home: Path
    port: int
    agent_id: str
    child: Child

    @property
    def data_plane_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Stack:
    """API + gateway on a SQLite file in `home`, a bootstrapped tenant, and agents on demand."""

    def __init__(self, home: Path, children: Children) -> None:
        self.home = home
        self.children = children
        self.api_port, self.gateway_port, self.enroll_port = free_port(), free_port(), free_port()
        self.api_key = ""

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def _env(self) -> dict[str, str]:
        return child_env(
            {
                "MALLARD_CP_HOME": str(self.home),
                "MALLARD_DATABASE_URL": f"sqlite:///{self.home / 'control-plane.db'}",
                "MALLARD_API_PORT": str(self.api_port),
                "MALLARD_GATEWAY_PORT": str(self.gateway_port),
                "MALLARD_GATEWAY_ENROLL_PORT": str(self.enroll_port),
                "MALLARD_HEARTBEAT_INTERVAL_MS": str(HEARTBEAT_MS),
            }
        )

    def start(self) -> None:
        from control_plane.gateway.server import prepare
        from control_plane.settings import Settings

        prepare(Settings(MALLARD_CP_HOME=self.home, database_url=f"sqlite:///{self.home / 'control-plane.db'}"))  # type: ignore[call-arg]
        py = sys.executable
        api = self.children.start_server(
            "api",
            [py, "-m", "control_plane.api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            self._env,
            [self.api_port],
        )
        wait_until(lambda: httpx.get(self.api_url + "/api/v1/health", timeout=2).status_code == 200, "API", api)
        self.children.start_server(
            "gateway", [py, "-m", "control_plane.gateway"], self._env, [self.gateway_port, self.enroll_port]
        )
        response = httpx.post(
            self.api_url + "/api/v1/bootstrap", json={"tenant": "bench", "email": "bench@localhost"}, timeout=15
        )
        self.api_key = str(_check(response)["api_key"]["key"])

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url + "/api/v1", headers={"Authorization": f"Bearer {self.api_key}"}, timeout=30
        )

    def register_model(self, project: str, model: str) -> None:
        with self.client() as api:
            _check(api.post("/projects", json={"name": project}))
            _check(api.post("/models", json={"name": model, "project": project}))

    def start_agent(self, name: str, env: dict[str, str] | None = None) -> Agent:
        """Enroll a new agent into an empty home and wait until it is online and ready."""
        with self.client() as api:
            token = _check(api.post("/join-tokens", json={"name": name, "ttl_seconds": 900}))["token"]
        home = self.home.parent / name
        home.mkdir(parents=True)
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "data_plane_agent",
            "run",
            "--control-plane",
            f"127.0.0.1:{self.gateway_port}",
            "--enroll-address",
            f"127.0.0.1:{self.enroll_port}",
            "--home",
            str(home),
            "--ca-file",
            str(self.home / "pki" / "ca.crt"),
            "--data-plane-port",
            str(port),
            "--join-token",
            token,
        ]
        child = self.children.start(name, argv, child_env(env or {}))
        identity = home / "identity.json"
        wait_until(identity.exists, f"{name} to enroll", child)
        agent_id = str(json.loads(identity.read_text())["agent_id"])
        with self.client() as api:
            wait_until(lambda: api.get(f"/agents/{agent_id}").json()["status"] == "online", f"{name} online", child)
        ready = f"http://127.0.0.1:{port}/v1/ready"
        wait_until(lambda: httpx.get(ready, timeout=2).status_code == 200, f"{name}'s data plane", child)
        return Agent(name=name, home=home, port=port, agent_id=agent_id, child=child)

    def cli_env(self, agent: Agent) -> dict[str, str]:
        """What a user's shell holds: the control plane, a key, and the data plane to upload to."""
        return child_env(
            {
                "MALLARD_API_URL": self.api_url,
                "MALLARD_API_KEY": self.api_key,
                "MALLARD_DATA_PLANE_URL": agent.data_plane_url,
                "MALLARD_CONFIG": str(self.home.parent / "cli-config.json"),  # never the user's own profiles
            }
        )


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()
