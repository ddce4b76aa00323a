"""The Docker runtime: a replica is a container of the build's image (`mallard-build:<build id>`,
which holds the build's environment and its trained model at /out/model), on the host network,
listening on 127.0.0.1 only. Containers carry labels naming this agent home, so the ones a
killed agent left behind are removed when it starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from data_plane_agent.serving.artifacts import ArtifactCache
from data_plane_agent.serving.runtimes import (
    REPLICA_MODULE,
    Prepared,
    PrepareFailed,
    ReplicaProcess,
    ServingRuntime,
    Target,
    fetch_artifact,
)

MODEL_DIR_IN_IMAGE = "/out/model"  # where the Docker builder leaves the trained model
OWNER_LABEL = "mallard.serving.owner"
_DockerErrors = (docker.errors.DockerException, requests.RequestException)


def _client(timeout: int = 60) -> docker.APIClient:
    return docker.APIClient(**docker.utils.kwargs_from_env(), timeout=timeout)


class Container(ReplicaProcess):
    def __init__(self, container_id: str, name: str, poll_interval: float = 0.5) -> None:
        self.id = container_id
        self.name = name
        self.poll_interval = poll_interval
        self._exit_code: int | None = None

    def _inspect_exit(self) -> int | None:
        client = _client(timeout=30)
        try:
            state = client.inspect_container(self.id)["State"]
        except docker.errors.NotFound:
            return -1
        finally:
            client.close()
        return None if state.get("Running") else int(state.get("ExitCode", -1))

    async def wait(self) -> int:
        while self._exit_code is None:
            with contextlib.suppress(*_DockerErrors):  # the engine hiccuped: ask again
                self._exit_code = await asyncio.to_thread(self._inspect_exit)
            if self._exit_code is None:
                await asyncio.sleep(self.poll_interval)
        return self._exit_code

    async def stop(self, grace_seconds: float) -> None:
        def stop_and_remove() -> None:
            client = _client(timeout=int(grace_seconds) + 30)
            try:
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    client.stop(self.id, timeout=max(1, int(grace_seconds)))
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    client.remove_container(self.id, force=True)
            finally:
                client.close()

        await asyncio.to_thread(stop_and_remove)
        await self.wait()

    def output_tail(self, lines: int = 20) -> str:
        client = _client(timeout=30)
        try:
            return bytes(client.logs(self.id, tail=lines)).decode("utf-8", "replace")
        except _DockerErrors:
            return ""
        finally:
            client.close()


class DockerRuntime(ServingRuntime):
    """Replicas as containers of the build's image (VariationSpec.image, default mallard-build:<build id>)."""

    name = "docker"

    def __init__(self, *, artifacts: ArtifactCache, work_dir: Path, owner: str) -> None:
        self.artifacts = artifacts
        self.work_dir = work_dir
        self.owner = hashlib.sha256(owner.encode()).hexdigest()[:16]

    async def prepare(self, target: Target) -> Prepared:
        artifact = await fetch_artifact(self.artifacts, target.artifact_digest)
        image = target.image or f"mallard-build:{target.build_id}"

        def inspect() -> None:
            client = _client(timeout=30)
            try:
                client.inspect_image(image)
            finally:
                client.close()

        try:
            await asyncio.to_thread(inspect)
        except docker.errors.ImageNotFound:
            raise PrepareFailed(
                f"the image {image} of build {target.build_id} is not on this Docker engine; "
                "rebuild the model with the docker builder"
            ) from None
        except _DockerErrors as exc:
            raise PrepareFailed(f"cannot reach the Docker engine: {exc}") from exc
        return Prepared(Target(target.build_id, target.artifact_digest, image, target.runtime), artifact)

    async def launch(self, prepared: Prepared, *, port: int, name: str) -> ReplicaProcess:
        image = prepared.target.image
        assert image is not None
        command = [
            "python",
            "-m",
            REPLICA_MODULE,
            "--model-dir",
            MODEL_DIR_IN_IMAGE,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        container_name = f"mallard-replica-{name}-{port}"

        def run() -> str:
            client = _client()
            try:
                with contextlib.suppress(docker.errors.NotFound):
                    client.remove_container(container_name, force=True)
                host_config: Any = client.create_host_config(network_mode="host", init=True)
                created = client.create_container(
                    image,
                    command=command,
                    name=container_name,
                    host_config=host_config,
                    environment={"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
                    labels={OWNER_LABEL: self.owner, "mallard.build_id": prepared.target.build_id},
                )
                client.start(created["Id"])
                return str(created["Id"])
            finally:
                client.close()

        return Container(await asyncio.to_thread(run), name)

    async def cleanup(self) -> None:
        def remove_leftovers() -> None:
            client = _client()
            try:
                for container in client.containers(all=True, filters={"label": f"{OWNER_LABEL}={self.owner}"}):
                    with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                        client.remove_container(container["Id"], force=True)
            finally:
                client.close()

        with contextlib.suppress(*_DockerErrors):
            await asyncio.to_thread(remove_leftovers)
