"""The Docker builder: docker-py against a local engine, no registry and no network in the build.

Two images per build, layered so that dependencies are cached:

    mallard-deps:<env key>    FROM <base image>; COPY wheelhouse; RUN venv + pip install --no-index
                              (one per dependency set, made once; the wheelhouse is prepared on
                              the host by `pip wheel`, so the image build needs no network)
    mallard-build:<build id>  FROM mallard-deps:<key>; COPY project; COPY params; RUN train (the
                              trained state is baked into the image); RUN check; RUN tests

The build image is built in stages (target `trained`, then the whole file) so each phase has
its own step and a failure is reported in the right phase; the same context and params hit the
layer cache all the way. The trained model is copied out of the image (`get_archive`) so the
artifact is the same content-addressed tar.gz as with the local builder.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import tarfile
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from data_plane_agent.builds.environments import SdkWheels, Wheelhouses, requirement_set
from data_plane_agent.builds.job import Builder, BuildJob
from data_plane_agent.builds.steps import PYTEST_COLUMNS, TAIL_LINES, BuildCancelled, StepFailed, pytest_failures

VENV = "/opt/mallard/venv"
DEPS_REPOSITORY = "mallard-deps"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]+)", re.MULTILINE)
_EXIT_CODE = re.compile(r"returned a non-zero code: (\d+)")
# The engine's own progress lines; the error summary keeps only what the step printed.
_BUILDER_NOISE = ("Step ", " ---> ", "Removing intermediate container", "Successfully ")

DEPS_DOCKERFILE = """\
FROM {base}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt /wheels/requirements.txt
COPY wheels/ /wheels/
RUN python3 -m venv {venv} \\
 && {venv}/bin/pip install --no-index --find-links /wheels -r /wheels/requirements.txt \\
 && {venv}/bin/pip install --no-index --no-deps /wheels/{sdk_wheel}
"""

BUILD_DOCKERFILE = """\
FROM {deps} AS trained
ENV PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin{env}
WORKDIR /project
COPY project/ /project/
COPY params.json /mallard/params.json
RUN ["python", "-m", "mallard.runtime", "train", "--project", "/project", "--output", "/out", \
"--params-json", "/mallard/params.json"]

FROM trained AS tested
RUN ["python", "-m", "mallard.runtime", "check", "--artifact", "/out/model"]
RUN if [ -d tests ]; then \
      COLUMNS={columns} MALLARD_MODEL_DIR=/out/model python -m pytest -q -p no:cacheprovider tests || [ $? -eq 5 ]; \
    else echo "the project has no tests/ directory; no project tests to run"; fi
ENV MALLARD_MODEL_DIR=/out/model
"""


def _client(timeout: int = 600) -> docker.APIClient:
    return docker.APIClient(**docker.utils.kwargs_from_env(), timeout=timeout)


class _BuildClient(docker.APIClient):
    """An API client whose streaming build can be cut from another thread.

    Closing a requests session does not wake a thread blocked reading the build's output, so
    `interrupt()` shuts the response's socket down (as docker-py itself reaches the socket for
    attach); the engine sees its client gone, stops the build and removes the step's container.
    """

    def __init__(self, timeout: int) -> None:
        super().__init__(**docker.utils.kwargs_from_env(), timeout=timeout)
        self._lock = threading.Lock()
        self._streaming: requests.Response | None = None
        self._interrupted = False

    def _post(self, url: str, **kwargs: Any) -> requests.Response:
        response: requests.Response = super()._post(url, **kwargs)
        if kwargs.get("stream"):
            with self._lock:
                self._streaming = response
                if self._interrupted:
                    _cut(response)
        return response

    def interrupt(self) -> None:
        with self._lock:
            self._interrupted = True
            if self._streaming is not None:
                _cut(self._streaming)


def _cut(response: requests.Response) -> None:
    try:
        response.raw._fp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        response.close()


def docker_reachable() -> tuple[bool, str]:
    """(True, "") if a Docker engine answers on DOCKER_HOST or the default socket."""
    try:
        client = _client(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return False, str(exc)
    return True, ""


def _tar_info(name: str, *, size: int = 0, directory: bool = False, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0  # identical bytes for identical files: COPY steps hit the layer cache
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, mode
    return info


def write_context(target: Path, *, files: dict[str, bytes], trees: dict[str, Path]) -> None:
    """A deterministic, uncompressed build context: in-memory `files` and directory `trees`."""
    entries: list[tuple[str, Path | bytes]] = [(name, data) for name, data in files.items()]
    for arc_root, root in trees.items():
        entries.append((arc_root, root))
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts or path.is_symlink() or path.name.endswith(".pyc"):
                continue
            entries.append((f"{arc_root}/{path.relative_to(root).as_posix()}", path))
    entries.sort(key=lambda item: item[0])
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, source in entries:
            if isinstance(source, bytes):
                tar.addfile(_tar_info(name, size=len(source)), io.BytesIO(source))
            elif source.is_dir():
                tar.addfile(_tar_info(name, directory=True))
            elif source.is_file():
                mode = 0o755 if source.stat().st_mode & 0o111 else 0o644
                with open(source, "rb") as handle:
                    tar.addfile(_tar_info(name, size=source.stat().st_size, mode=mode), handle)


class DockerBuilder(Builder):
    """Builds on a local Docker engine; see the module docstring for the image layout."""

    name = "docker"

    def __init__(self, *, sdk: SdkWheels, wheelhouses: Wheelhouses, base_image: str, pip_cache: Path) -> None:
        self.sdk = sdk
        self.wheelhouses = wheelhouses
        self.base_image = base_image
        self.pip_cache = pip_cache
        self._deps: dict[str, str] = {}  # build id -> deps image tag

    # ---- phases ------------------------------------------------------------------------

    def resolve_dependencies(self, job: BuildJob) -> None:
        """The dependency image for this requirement set: reused when the engine has it, else
        built from a wheelhouse prepared here on the host (pip wheel), so it installs offline."""
        client = _client(timeout=30)
        try:
            base_id = str(client.inspect_image(self.base_image)["Id"])
        except docker.errors.ImageNotFound:
            raise StepFailed(
                f"the Docker base image {self.base_image} is not on this engine; create it (see the README: "
                "debootstrap + docker import) or set MALLARD_AGENT_DOCKER_BASE_IMAGE"
            ) from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise StepFailed(f"cannot reach the Docker engine: {exc}") from exc
        finally:
            client.close()
        env = job.step_env(PIP_CACHE_DIR=str(self.pip_cache))
        sdk = self.sdk.ensure(log=job.log, cancel=job.cancel, deadline=job.deadline, env=env)
        requirements = requirement_set(job.config.requirements)
        key = self.wheelhouses.key(requirements=requirements, sdk=sdk, base_image_id=base_id)
        tag = f"{DEPS_REPOSITORY}:{key[:32]}"
        self._deps[job.build_id] = tag
        if self._image_exists(tag):
            job.log.line(f"reusing the dependency image {tag}")
            return
        house, _warm = self.wheelhouses.ensure(
            key=key,
            requirements=requirements,
            sdk=sdk,
            log=job.log,
            cancel=job.cancel,
            deadline=job.deadline,
            env=env,
        )
        dockerfile = DEPS_DOCKERFILE.format(base=self.base_image, venv=VENV, sdk_wheel=sdk.path.name)
        context = job.workdir / "deps-context.tar"
        write_context(
            context,
            files={"Dockerfile": dockerfile.encode(), "requirements.txt": (house / "requirements.txt").read_bytes()},
            trees={"wheels": house / "wheels"},
        )
        self._build(job, context, title="dependency image build", tag=tag, labels={"mallard.env_key": key})
        context.unlink()

    @staticmethod
    def _image_exists(tag: str) -> bool:
        client = _client(timeout=30)
        try:
            client.inspect_image(tag)
            return True
        except docker.errors.ImageNotFound:
            return False
        finally:
            client.close()

    def train(self, job: BuildJob) -> None:
        context = self._build_context(job)
        self._build(job, context, title="training (docker build, target trained)", target="trained")

    def test(self, job: BuildJob) -> None:
        tag = f"mallard-build:{job.build_id}"
        labels = {
            "mallard.build_id": job.build_id,
            "mallard.model": str(job.spec.get("model", "")),
            "mallard.context_digest": str(job.spec["context_digest"]),
        }
        self._build(
            job,
            self._build_context(job),
            title="artifact check and project tests (docker build)",
            tag=tag,
            labels=labels,
        )
        job.image = tag

    def collect(self, job: BuildJob) -> None:
        """Copy /out (model/ and result.json) out of the built image."""
        assert job.image is not None
        client = _client()
        name = f"mallard-extract-{job.build_id}"
        archive = job.workdir / "out.tar"
        try:
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_container(name, force=True)
            container = client.create_container(job.image, command=["true"], name=name, network_disabled=True)
            try:
                stream, _stat = client.get_archive(container, "/out")
                with open(archive, "wb") as handle:
                    for chunk in stream:
                        handle.write(chunk)
            finally:
                client.remove_container(container, force=True)
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise StepFailed(f"could not copy the trained model out of {job.image}: {exc}") from exc
        finally:
            client.close()
        with tarfile.open(archive) as tar:
            tar.extractall(job.workdir, filter="data")  # the archive's top directory is out/
        archive.unlink()

    def release(self, job: BuildJob) -> None:
        self._deps.pop(job.build_id, None)

    def recover(self, build_id: str) -> None:
        client = _client(timeout=30)
        try:
            with contextlib.suppress(docker.errors.NotFound):
                client.remove_container(f"mallard-extract-{build_id}", force=True)
        finally:
            client.close()

    # ---- machinery -----------------------------------------------------------------------

    def _build_context(self, job: BuildJob) -> Path:
        context = job.workdir / "build-context.tar"
        if context.exists():
            return context
        env_lines = ""
        for key, value in sorted(job.config.env.items()):
            if not _ENV_NAME.match(key):
                raise StepFailed(f"mallard.yaml build.env: {key!r} is not a valid environment variable name")
            env_lines += f" \\\n    {key}={json.dumps(value)}"
        dockerfile = BUILD_DOCKERFILE.format(
            deps=self._deps[job.build_id], venv=VENV, env=env_lines, columns=PYTEST_COLUMNS
        )
        files = {"Dockerfile": dockerfile.encode(), "params.json": job.params_file.read_bytes()}
        write_context(context, files=files, trees={"project": job.project})
        return context

    def _build(
        self,
        job: BuildJob,
        context: Path,
        *,
        title: str,
        tag: str | None = None,
        target: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> str:
        """One `docker build`, streamed into the build log; cancel or the deadline close the
        connection, which makes the engine stop the build and remove its containers."""
        job.cancel.raise_if_cancelled()
        client = _BuildClient(timeout=max(60, int(job.deadline - time.monotonic())))
        job.log.line(f"docker build{' --target ' + target if target else ''}{' -t ' + tag if tag else ''}")
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        error: str | None = None
        image_id = ""
        timer = threading.Timer(max(0.0, job.deadline - time.monotonic()), client.interrupt)
        timer.daemon = True
        timer.start()
        try:
            with job.cancel.on_cancel(client.interrupt), open(context, "rb") as fileobj:
                stream: Iterable[dict[str, Any]] = client.build(
                    fileobj=fileobj,
                    custom_context=True,
                    tag=tag,
                    target=target,
                    labels=labels,
                    network_mode="host",
                    rm=True,
                    forcerm=True,
                    pull=False,
                    decode=True,
                )
                for chunk in stream:
                    if "stream" in chunk:
                        text = str(chunk["stream"])
                        job.log.write(text)
                        built = _BUILT.search(text)
                        if built and not image_id:
                            image_id = built.group(1)
                        for line in _ANSI.sub("", text).splitlines():
                            if line.strip() and not line.startswith(_BUILDER_NOISE):
                                tail.append(line)
                    elif "error" in chunk:
                        error = str(chunk["error"]).strip()
                        job.log.write(error + "\n")
                    elif "aux" in chunk and isinstance(chunk["aux"], dict):
                        image_id = str(chunk["aux"].get("ID", image_id))
        except Exception as exc:
            # After interrupt() the reader fails in many ways (urllib3 ProtocolError, ValueError
            # on a cut chunk, OSError, AttributeError); which one does not matter.
            if job.cancel.cancelled:
                raise BuildCancelled() from exc
            if time.monotonic() >= job.deadline:
                raise StepFailed(f"{title} did not finish before the build deadline; it was stopped") from exc
            raise StepFailed(f"{title}: Docker engine error: {exc}") from exc
        finally:
            timer.cancel()
            client.close()
        if job.cancel.cancelled:
            raise BuildCancelled()
        if error is not None:
            code = _EXIT_CODE.search(error)
            what = f"exit code {code.group(1)}" if code else error
            detail = pytest_failures(list(tail)) or "\n".join(tail)
            raise StepFailed(f"{title} failed ({what}):\n{detail}")
        if not image_id:  # the stream ended early: the deadline cut it, or the engine went away
            if time.monotonic() >= job.deadline:
                raise StepFailed(f"{title} did not finish before the build deadline; it was stopped")
            raise StepFailed(f"{title}: the Docker engine ended the build without a result")
        return image_id
