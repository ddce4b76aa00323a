"""Where replicas run: a local process in the build's virtualenv, or a Docker container of the
build's image. Both listen on 127.0.0.1 only and speak the replica protocol.

A runtime first `prepare()`s a target (fetch and unpack the artifact; make or reuse the
virtualenv through the build EnvironmentCache, or check the image), then `launch()`es replica
processes of it on given ports. Local replicas die with the agent (PR_SET_PDEATHSIG), so an
agent killed -9 leaves no orphan holding a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from data_plane_agent.builds.environments import SdkWheels, VirtualEnvironments, requirement_set
from data_plane_agent.builds.log import BuildLog
from data_plane_agent.builds.steps import BuildCancelled, CancelToken, StepFailed, child_env
from data_plane_agent.serving.artifacts import ArtifactCache, ArtifactUnavailable, UnpackedArtifact

REPLICA_MODULE = "mallard.serving.replica"
ENVIRONMENT_TIMEOUT_SECONDS = 1800.0
# One thread per replica by default: micro-batches are small and replicas share the host's cores.
_THREAD_DEFAULTS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Target:
    """What a replica runs: one build, through one runtime."""

    build_id: str
    artifact_digest: str
    image: str | None
    runtime: str


@dataclass(frozen=True)
class Prepared:
    """A target ready to launch: the unpacked artifact and, for local replicas, the environment's Python."""

    target: Target
    artifact: UnpackedArtifact
    python: Path | None = None


class PrepareFailed(Exception):
    """The target cannot run here; the message says why (it becomes the deployment's status message)."""


class ReplicaProcess(ABC):
    """One running replica (a process or a container)."""

    name: str

    @abstractmethod
    async def wait(self) -> int:
        """Wait for it to end; its exit code."""

    @abstractmethod
    async def stop(self, grace_seconds: float) -> None:
        """SIGTERM, then kill after `grace_seconds`; returns once it has ended."""

    @abstractmethod
    def output_tail(self, lines: int = 20) -> str:
        """The last lines it printed (for an error summary)."""


class ServingRuntime(ABC):
    name: str

    @abstractmethod
    async def prepare(self, target: Target) -> Prepared: ...

    @abstractmethod
    async def launch(self, prepared: Prepared, *, port: int, name: str) -> ReplicaProcess: ...

    async def cleanup(self) -> None:  # noqa: B027  (optional hook)
        """Remove what a previous agent run left behind (containers)."""


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class LocalProcess(ReplicaProcess):
    def __init__(self, process: asyncio.subprocess.Process, name: str, log_path: Path) -> None:
        self.process = process
        self.name = name
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait(self) -> int:
        return await self.process.wait()

    async def stop(self, grace_seconds: float) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), grace_seconds)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()

    def output_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 8192))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class LocalRuntime(ServingRuntime):
    """Replicas as processes of the build's virtualenv (made or reused like the local builder's)."""

    name = "local"

    def __init__(
        self,
        *,
        artifacts: ArtifactCache,
        sdk: SdkWheels,
        environments: VirtualEnvironments,
        work_dir: Path,
        pip_cache: Path,
        python: Path | None = None,
    ) -> None:
        """`python` set: every replica runs with that interpreter instead of its build's virtualenv
        (a development shortcut; it must have the model's libraries)."""
        self.artifacts = artifacts
        self.sdk = sdk
        self.environments = environments
        self.work_dir = work_dir
        self.pip_cache = pip_cache
        self.python = python

    async def prepare(self, target: Target) -> Prepared:
        artifact = await fetch_artifact(self.artifacts, target.artifact_digest)
        if self.python is not None:
            return Prepared(target, artifact, self.python)
        try:
            venv = await asyncio.to_thread(self._environment, artifact)
        except (StepFailed, BuildCancelled) as exc:
            raise PrepareFailed(f"cannot make the environment of build {target.build_id}: {exc}") from exc
        return Prepared(target, artifact, venv / "bin" / "python")

    def _environment(self, artifact: UnpackedArtifact) -> Path:
        log = BuildLog(self.work_dir / "logs" / "environments.log", store=None, build_id="serving-environments")
        deadline = time.monotonic() + ENVIRONMENT_TIMEOUT_SECONDS
        env = child_env(dict(os.environ), PIP_CACHE_DIR=str(self.pip_cache))
        try:
            sdk = self.sdk.ensure(log=log, cancel=CancelToken(), deadline=deadline, env=env)
            venv, _warm = self.environments.ensure(
                requirements=requirement_set(artifact.requirements),
                sdk=sdk,
                log=log,
                cancel=CancelToken(),
                deadline=deadline,
                env=env,
            )
        finally:
            log.close()
        return venv

    async def launch(self, prepared: Prepared, *, port: int, name: str) -> ReplicaProcess:
        assert prepared.python is not None
        log_path = self.work_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        venv = prepared.python.parent.parent
        env = child_env(dict(os.environ), PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        for key, value in _THREAD_DEFAULTS.items():
            env[key] = os.environ.get(key, value)
        for key, value in _build_env(prepared.artifact.project_dir).items():
            if key not in ("PATH", "VIRTUAL_ENV", "PYTHONPATH"):
                env[key] = value  # mallard.yaml build.env, as the model saw it at build time
        if self.python is None:
            env |= {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{env['PATH']}"}
        elif "PYTHONPATH" in os.environ:
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]  # the agent's own interpreter and source tree
        project = prepared.artifact.project_dir
        with open(log_path, "ab") as log:
            process = await asyncio.create_subprocess_exec(
                str(prepared.python),
                "-m",
                REPLICA_MODULE,
                "--model-dir",
                str(prepared.artifact.model_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                cwd=project if project.is_dir() else prepared.artifact.root,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        return LocalProcess(process, name, log_path)


def _build_env(project: Path) -> dict[str, str]:
    """`build.env` of the artifact's mallard.yaml (empty when it has none or cannot be read)."""
    from mallard.project import CONFIG_FILE, ProjectError, read_config

    try:
        return dict(read_config(project / CONFIG_FILE).build.env)
    except (ProjectError, OSError):
        return {}


async def fetch_artifact(artifacts: ArtifactCache, digest: str) -> UnpackedArtifact:
    try:
        return await asyncio.to_thread(artifacts.ensure, digest)
    except ArtifactUnavailable as exc:
        raise PrepareFailed(str(exc)) from exc
