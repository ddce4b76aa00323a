"""The local stack: control-plane API, gateway, scheduler and one enrolled agent.

Everything runs on embedded defaults (SQLite, a filesystem Celery transport, a local
directory for data) as separate processes, the same split as production.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from mallard.config import Profile, remove_profile, save_profile
from mallard.dev import processes
from mallard.dev.processes import ManagedProcess

DEFAULT_PORTS = {"api": 8700, "gateway": 8701, "data_plane": 8710, "data_plane_grpc": 8711}
PROFILE_NAME = "dev"


class StackError(Exception):
    """The stack could not be started or stopped; the message says which part and why."""


def default_home() -> Path:
    return Path(os.environ.get("MALLARD_DEV_HOME", Path.home() / ".mallard" / "dev"))


class DevStack:
    def __init__(self, home: Path | None = None, *, heartbeat_ms: int = 2000) -> None:
        self.home = (home or default_home()).expanduser().resolve()
        self.heartbeat_ms = heartbeat_ms
        self.cp_home = self.home / "control-plane"
        self.agent_home = self.home / "agent"
        self.logs = self.home / "logs"
        self.pids_file = self.home / "pids.json"
        self.dev_json = self.home / "dev.json"

    # ---- inspection ------------------------------------------------------------------

    def info(self) -> dict[str, Any] | None:
        if not self.dev_json.exists():
            return None
        try:
            data: dict[str, Any] = json.loads(self.dev_json.read_text())
            return data
        except ValueError:
            return None

    def running(self) -> list[ManagedProcess]:
        return [p for p in processes.load(self.pids_file) if processes.is_alive(p)]

    def healthy(self) -> bool:
        info = self.info()
        procs = processes.load(self.pids_file)
        if not info or not procs or any(not processes.is_alive(p) for p in procs):
            return False
        try:
            return httpx.get(info["api_url"] + "/api/v1/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # ---- up --------------------------------------------------------------------------

    def up(self, *, progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
        if self.healthy():
            progress("stack already running")
            info = self.info()
            assert info is not None
            self._write_profile(info)
            return info
        if self.running():
            progress("stopping leftovers of a previous stack")
            self.down(keep_profile=True)
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        previous = self.info() or {}
        ports = self._choose_ports(previous.get("ports", {}))
        env = self._control_plane_env(ports)
        started: list[ManagedProcess] = []
        try:
            progress("preparing the database and certificate authority")
            self._prepare(env)
            py = sys.executable
            progress(f"starting the control-plane API on 127.0.0.1:{ports['api']}")
            started.append(
                processes.spawn(
                    "api",
                    [py, "-m", "control_plane.api", "--host", "127.0.0.1", "--port", str(ports["api"])],
                    env=env,
                    log_dir=self.logs,
                    marker="control_plane.api",
                )
            )
            processes.save(self.pids_file, started)
            api_url = f"http://127.0.0.1:{ports['api']}"
            self._wait(
                lambda: httpx.get(api_url + "/api/v1/health", timeout=1).status_code == 200,
                "the API to answer /api/v1/health",
                started[-1],
            )
            progress(f"starting the gateway (link 127.0.0.1:{ports['gateway']}, enroll :{ports['gateway'] + 1})")
            started.append(
                processes.spawn(
                    "gateway",
                    [py, "-m", "control_plane.gateway"],
                    env=env,
                    log_dir=self.logs,
                    marker="control_plane.gateway",
                )
            )
            processes.save(self.pids_file, started)
            self._wait(
                lambda: processes.tcp_open(ports["gateway"]) and processes.tcp_open(ports["gateway"] + 1),
                "the gateway ports to open",
                started[-1],
            )
            progress("starting the scheduler (Celery worker + beat, embedded transport)")
            started.append(
                processes.spawn(
                    "scheduler",
                    [py, "-m", "control_plane.scheduler"],
                    env=env,
                    log_dir=self.logs,
                    marker="control_plane.scheduler",
                )
            )
            processes.save(self.pids_file, started)

            api_key = self._bootstrap(api_url, previous)
            client = httpx.Client(
                base_url=api_url + "/api/v1", headers={"Authorization": f"Bearer {api_key}"}, timeout=15
            )
            agent_args = [
                py,
                "-m",
                "data_plane_agent",
                "run",
                "--control-plane",
                f"127.0.0.1:{ports['gateway']}",
                "--home",
                str(self.agent_home),
                "--ca-file",
                str(self.cp_home / "pki" / "ca.crt"),
                "--data-plane-port",
                str(ports["data_plane"]),
                "--data-plane-grpc-port",
                str(ports["data_plane_grpc"]),
            ]
            join_token = ""
            if not (self.agent_home / "identity.json").exists():
                progress("creating a join token for the local agent")
                token = self._check(client.post("/join-tokens", json={"name": "local-agent", "ttl_seconds": 900}))
                join_token = token["token"]
            progress(f"starting the agent (data plane on 127.0.0.1:{ports['data_plane']})")
            agent_env = {k: v for k, v in env.items() if not k.startswith("MALLARD_")} | {"PYTHONUNBUFFERED": "1"}
            if join_token:  # through the environment: a command line is visible to every local user
                agent_env["MALLARD_AGENT_JOIN_TOKEN"] = join_token
            started.append(
                processes.spawn("agent", agent_args, env=agent_env, log_dir=self.logs, marker="data_plane_agent")
            )
            processes.save(self.pids_file, started)
            identity_file = self.agent_home / "identity.json"
            self._wait(identity_file.exists, "the agent to enroll", started[-1])
            agent_id = json.loads(identity_file.read_text())["agent_id"]
            progress(f"waiting for agent {agent_id} to come online")

            def agent_online() -> bool:
                response = client.get(f"/agents/{agent_id}")
                return response.status_code == 200 and response.json()["status"] == "online"

            self._wait(agent_online, f"agent {agent_id} to come online", started[-1])
            me = self._check(client.get("/me"))
        except BaseException:
            for proc in reversed(started):
                processes.stop(proc)
            self.pids_file.unlink(missing_ok=True)
            raise
        info = {
            "api_url": api_url,
            "api_key": api_key,
            "data_plane_url": f"http://127.0.0.1:{ports['data_plane']}",
            "data_plane_grpc": f"127.0.0.1:{ports['data_plane_grpc']}",
            "gateway": f"127.0.0.1:{ports['gateway']}",
            "enroll": f"127.0.0.1:{ports['gateway'] + 1}",
            "ca_file": str(self.cp_home / "pki" / "ca.crt"),
            "tenant_id": me["tenant"]["id"],
            "agent_id": agent_id,
            "home": str(self.home),
            "database_url": env["MALLARD_DATABASE_URL"],
            "logs": {p.name: p.log for p in started},
            "ports": ports,
        }
        tmp = self.dev_json.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(info, fh, indent=2)
        os.replace(tmp, self.dev_json)
        self._write_profile(info)
        return info

    def _write_profile(self, info: dict[str, Any]) -> None:
        save_profile(
            PROFILE_NAME,
            Profile(
                api_url=info["api_url"],
                api_key=info["api_key"],
                data_plane_url=info["data_plane_url"],
                gateway=info["gateway"],
                data_plane_grpc=info.get("data_plane_grpc", ""),
            ),
        )

    def _choose_ports(self, previous: dict[str, int]) -> dict[str, int]:
        taken: set[int] = set()
        ports: dict[str, int] = {}
        for name, default in DEFAULT_PORTS.items():
            preferred = int(previous.get(name, default))
            port = processes.pick_port(preferred, taken)
            if name == "gateway":
                while not processes.port_free(port + 1) or port + 1 in taken:
                    port = processes.pick_port(port + 2, taken)
                taken.add(port + 1)
            taken.add(port)
            ports[name] = port
        return ports

    def _control_plane_env(self, ports: dict[str, int]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "MALLARD_CP_HOME": str(self.cp_home),
                "MALLARD_DATABASE_URL": f"sqlite:///{self.cp_home / 'control-plane.db'}",
                "MALLARD_API_PORT": str(ports["api"]),
                "MALLARD_GATEWAY_PORT": str(ports["gateway"]),
                "MALLARD_GATEWAY_ENROLL_PORT": str(ports["gateway"] + 1),
                "MALLARD_HEARTBEAT_INTERVAL_MS": str(self.heartbeat_ms),
            }
        )
        return env

    def _prepare(self, env: dict[str, str]) -> None:
        import subprocess

        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "from control_plane.gateway.server import prepare;"
                "from control_plane.settings import Settings; prepare(Settings())",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise StackError(f"preparing the control-plane database failed:\n{result.stderr[-2000:]}")

    def _bootstrap(self, api_url: str, previous: dict[str, Any]) -> str:
        key = previous.get("api_key")
        if (
            key
            and httpx.get(api_url + "/api/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code
            == 200
        ):
            return str(key)
        response = httpx.post(
            api_url + "/api/v1/bootstrap",
            json={"tenant": "default", "email": "admin@localhost", "name": "Local admin"},
            timeout=15,
        )
        if response.status_code == 409:
            raise StackError(
                f"the database in {self.cp_home} was bootstrapped before but {self.dev_json} has no working key; "
                f"start fresh with `mallard dev down --purge --home {self.home}`"
            )
        return str(self._check(response)["api_key"]["key"])

    @staticmethod
    def _check(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise StackError(
                f"{response.request.method} {response.request.url.path} -> "
                f"{response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def _wait(self, condition: Callable[[], object], what: str, proc: ManagedProcess, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return True
            except (httpx.HTTPError, OSError, KeyError, ValueError):
                pass
            if not processes.is_alive(proc):
                tail = Path(proc.log).read_text(errors="replace")[-3000:] if Path(proc.log).exists() else ""
                raise StackError(f"{proc.name} exited while waiting for {what}; last log lines:\n{tail}")
            time.sleep(0.1)
        raise StackError(f"timed out after {timeout:.0f}s waiting for {what}; see {proc.log}")

    # ---- down ------------------------------------------------------------------------

    def down(self, *, purge: bool = False, keep_profile: bool = False) -> list[str]:
        """Stop every process of the stack (agent first). Returns the names stopped."""
        stopped: list[str] = []
        order = {"agent": 0, "scheduler": 1, "gateway": 2, "api": 3}
        for proc in sorted(processes.load(self.pids_file), key=lambda p: order.get(p.name, 9)):
            if processes.is_alive(proc):
                processes.stop(proc)
                stopped.append(proc.name)
        self.pids_file.unlink(missing_ok=True)
        if not keep_profile:
            remove_profile(PROFILE_NAME)
        if purge and self.home.exists():
            import shutil

            shutil.rmtree(self.home)
        return stopped
