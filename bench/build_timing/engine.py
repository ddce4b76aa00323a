"""The Docker side of the build benchmark: is there an engine, a base image only this run uses
(so the first Docker build is cold in the engine's layer cache too), the peer `docker build`,
and removing every image the run made."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

BASE_IMAGE = "mallard-base:bookworm"
RUN_LABEL = "mallard.bench.run"


def engine_status(base_image: str = BASE_IMAGE) -> str:
    """Why Docker builds cannot be measured here (printed as `docker: skipped (...)`), or "" if they can."""
    try:
        import docker
        import docker.errors
    except ImportError:
        return "docker-py is not installed"
    try:
        client = docker.APIClient(**docker.utils.kwargs_from_env(), timeout=5)
        client.ping()
    except Exception:
        return "no engine"
    try:
        client.inspect_image(base_image)
    except docker.errors.ImageNotFound:
        return f"no base image {base_image}; .ci/run makes it"
    finally:
        client.close()
    return ""


def _client(timeout: int = 1800) -> Any:
    import docker

    return docker.APIClient(**docker.utils.kwargs_from_env(), timeout=timeout)


def _build(client: Any, dockerfile: str, **kwargs: Any) -> str:
    """One classic-builder build (what docker-py and the agent use) from an in-memory context."""
    image = ""
    for chunk in client.build(fileobj=io.BytesIO(dockerfile.encode()), rm=True, forcerm=True, decode=True, **kwargs):
        if "error" in chunk:
            raise RuntimeError(f"docker build failed: {chunk['error']}")
        if isinstance(chunk.get("aux"), dict):
            image = str(chunk["aux"].get("ID", image))
    return image


class DockerRun:
    """Images this run makes. Every one descends from the run's own base image, whose label
    (`mallard.bench.run=<id>`) they inherit, so `cleanup()` finds exactly them by that label."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.base_tag = f"mallard-bench-base:{run_id}"

    def make_base(self) -> str:
        """A label-only child of the base image: a new image id, so no cached layer of an earlier
        build (this run's, another run's, a test's) matches the first build's dependency image."""
        client = _client(timeout=120)
        try:
            _build(client, f"FROM {BASE_IMAGE}\nLABEL {RUN_LABEL}={self.run_id}\n", tag=self.base_tag, pull=False)
        finally:
            client.close()
        return self.base_tag

    def peer(self, deps_image: str, project: Path, work: Path, *, cached: bool) -> float:
        """Plain `docker build` of the Dockerfile the agent generates (train, check, tests on the
        dependency image) in one call, without the platform; seconds."""
        from data_plane_agent.builds.docker import BUILD_DOCKERFILE, VENV, write_context
        from data_plane_agent.builds.steps import PYTEST_COLUMNS

        dockerfile = BUILD_DOCKERFILE.format(deps=deps_image, venv=VENV, env="", columns=PYTEST_COLUMNS)
        work.mkdir(parents=True, exist_ok=True)
        context = work / "peer-context.tar"
        files = {"Dockerfile": dockerfile.encode(), "params.json": b"{}"}
        write_context(context, files=files, trees={"project": project})
        client = _client()
        try:
            started = time.monotonic()
            with open(context, "rb") as fileobj:
                stream = client.build(
                    fileobj=fileobj,
                    custom_context=True,
                    nocache=not cached,
                    network_mode="host",
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                )
                for chunk in stream:
                    if "error" in chunk:
                        raise RuntimeError(f"peer docker build failed: {chunk['error']}")
            return time.monotonic() - started
        finally:
            client.close()

    def images(self) -> list[dict[str, Any]]:
        client = _client(timeout=60)
        try:
            found: list[dict[str, Any]] = client.images(filters={"label": f"{RUN_LABEL}={self.run_id}"})
        finally:
            client.close()
        return found

    def cleanup(self, timeout: float = 60.0) -> list[str]:
        """Remove every container and image of this run: the agent's mallard-build:<id> and
        mallard-deps:<key>, the peer's, the base. Returns what is left, with the reason.

        An interrupted build leaves its step's container behind for a moment (the engine removes
        it once it notices the client has gone), so removal is retried until `timeout`."""
        import docker.errors

        try:
            client = _client(timeout=120)
        except Exception as exc:
            return [f"(engine unreachable: {exc})"]
        label = {"label": f"{RUN_LABEL}={self.run_id}"}
        left: list[str] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = []
                for container in client.containers(all=True, filters=label):
                    try:
                        client.remove_container(container["Id"], force=True)
                    except docker.errors.NotFound:
                        pass
                    except docker.errors.APIError as exc:
                        left.append(f"container {container['Id'][:12]}: {exc.explanation or exc}")
                # Newest first: a child goes before its parent; untagged parents go with it.
                images = sorted(client.images(all=True, filters=label), key=lambda i: i["Created"], reverse=True)
                for image in images:
                    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
                    for name in tags or [image["Id"]]:
                        try:
                            client.remove_image(name)
                        except docker.errors.ImageNotFound:
                            pass
                        except docker.errors.APIError as exc:
                            left.append(f"image {name}: {exc.explanation or exc}")
                if not left or time.monotonic() > deadline:
                    return left
                time.sleep(1)
        finally:
            client.close()
