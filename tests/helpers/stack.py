"""Real control-plane and agent processes on loopback, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.servers import free_port, repo_root, wait_for


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
    env["PYTHONPATH"] = str(repo_root())
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


RUNNING: list[Proc] = []  # every process a test started; tests/conftest.py stops leftovers


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        handle = open(self.log, "ab")  # noqa: SIM115  (kept open for the child's lifetime)
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=repo_root()
        )
        handle.close()
        RUNNING.append(self)
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def terminate(self, timeout: float = 20) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(10)

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class ControlPlane:
    """API + gateway processes sharing one database and one PKI directory."""

    database_url: str
    home: Path
    heartbeat_ms: int = 500
    extra_env: dict[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    gateway_port: int = field(default_factory=free_port)
    enroll_port: int = field(default_factory=free_port)
    api: Proc | None = None
    gateway: Proc | None = None
    api_key: str = ""

    @property
    def env(self) -> dict[str, str]:
        return _env(
            {
                "MALLARD_CP_HOME": str(self.home),
                "MALLARD_DATABASE_URL": self.database_url,
                "MALLARD_API_PORT": str(self.api_port),
                "MALLARD_GATEWAY_PORT": str(self.gateway_port),
                "MALLARD_GATEWAY_ENROLL_PORT": str(self.enroll_port),
                "MALLARD_HEARTBEAT_INTERVAL_MS": str(self.heartbeat_ms),
                **self.extra_env,
            }
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def link_address(self) -> str:
        return f"127.0.0.1:{self.gateway_port}"

    @property
    def enroll_address(self) -> str:
        return f"127.0.0.1:{self.enroll_port}"

    @property
    def ca_file(self) -> Path:
        return self.home / "pki" / "ca.crt"

    def prepare(self) -> None:
        from control_plane.gateway.server import prepare
        from control_plane.settings import Settings

        settings = Settings(MALLARD_CP_HOME=self.home, database_url=self.database_url)  # type: ignore[call-arg]
        prepare(settings)

    def start_gateway(self) -> Proc:
        self.gateway = Proc(
            "gateway", [sys.executable, "-m", "control_plane.gateway"], self.env, self.home / "gateway.log"
        ).start()
        wait_for(
            lambda: _port_open(self.gateway_port) and _port_open(self.enroll_port),
            timeout=30,
            what=f"gateway ports; log:\n{self.gateway.output()[-2000:]}",
        )
        return self.gateway

    def start_api(self) -> Proc:
        self.api = Proc(
            "api",
            [sys.executable, "-m", "control_plane.api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            self.env,
            self.home / "api.log",
        ).start()
        wait_for(
            lambda: httpx.get(self.api_url + "/api/v1/health", timeout=1).status_code == 200,
            timeout=30,
            what="API health",
        )
        return self.api

    def bootstrap(self) -> str:
        response = httpx.post(
            self.api_url + "/api/v1/bootstrap", json={"tenant": "acme", "email": "admin@acme.test"}, timeout=10
        )
        assert response.status_code == 201, response.text
        self.api_key = response.json()["api_key"]["key"]
        return self.api_key

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url + "/api/v1", headers={"Authorization": f"Bearer {key or self.api_key}"}, timeout=30
        )

    def stop(self) -> None:
        for proc in (self.gateway, self.api):
            if proc is not None:
                proc.terminate()


@dataclass
class AgentProcess:
    control_plane: ControlPlane
    home: Path
    join_token: str = ""
    data_plane_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    proc: Proc | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Proc:
        argv = [
            sys.executable,
            "-m",
            "data_plane_agent",
            "run",
            "--control-plane",
            self.control_plane.link_address,
            "--enroll-address",
            self.control_plane.enroll_address,
            "--home",
            str(self.home),
            "--ca-file",
            str(self.control_plane.ca_file),
            "--data-plane-port",
            str(self.data_plane_port),
            "--data-plane-grpc-port",
            str(self.grpc_port),
        ]
        env_token = {"MALLARD_AGENT_JOIN_TOKEN": self.join_token} if self.join_token else {}
        self.home.mkdir(parents=True, exist_ok=True)
        self.proc = Proc(
            "agent",
            argv,
            _env({"MALLARD_AGENT_BACKOFF_MAX_SECONDS": "1", **env_token, **self.extra_env}),
            self.home.parent / f"{self.home.name}.log",
        ).start()
        return self.proc

    @property
    def identity(self) -> dict[str, Any]:
        return json.loads((self.home / "identity.json").read_text())

    def wait_enrolled(self, timeout: float = 30) -> str:
        wait_for(
            lambda: (self.home / "identity.json").exists(),
            timeout=timeout,
            what=f"agent enrollment; log:\n{self.proc.output()[-2000:] if self.proc else ''}",
        )
        return str(self.identity["agent_id"])

    @property
    def data_plane_url(self) -> str:
        return f"http://127.0.0.1:{self.data_plane_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False
