"""The Docker builder end to end against a real dockerd and the registry-free base image:
wheelhouse on the host, offline image builds, trained state baked into the image, layer cache."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from data_plane_agent.builds import SdkWheels, Wheelhouses
from data_plane_agent.builds.docker import DEPS_REPOSITORY, DockerBuilder, docker_reachable
from data_plane_agent.builds.environments import SdkWheel
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.settings import AgentSettings
from data_plane_agent.storage import LocalObjectStore, artifact_key, build_log_key
from tests.data_plane_agent.builds.conftest import ManagerFactory, scaffold_context
from tests.data_plane_agent.builds.helpers import SLOW_BUILD, SLOW_BUILD_OUTPUT, churn_model, events, spec, wait_final
from tests.helpers.servers import skip_or_fail

pytestmark = pytest.mark.slow

BASE_IMAGE = AgentSettings.model_fields["docker_base_image"].default


@pytest.fixture(scope="module")
def docker_client() -> Iterator[object]:
    reachable, why = docker_reachable()
    if not reachable:
        skip_or_fail(f"no Docker engine reachable ({why}); start dockerd (see RECIPES / .ci/run)")
    client = docker.from_env()
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        skip_or_fail(f"the base image {BASE_IMAGE} is missing; make it with debootstrap + docker import (.ci/run)")
    deps_before = {tag for image in client.images.list(name=DEPS_REPOSITORY) for tag in image.tags}
    yield client
    # What these tests made goes again (the engine keeps them as caches otherwise, 660 MB apiece).
    for image in client.images.list(name="mallard-build"):
        for tag in image.tags:
            if tag.startswith("mallard-build:bld_dk_"):
                client.images.remove(tag, force=True)
    for image in client.images.list(name=DEPS_REPOSITORY):
        for tag in set(image.tags) - deps_before:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(tag)
    client.close()


@pytest.fixture
def docker_builder(docker_client: object, build_cache: Path, pip_cache: Path, sdk_wheel: SdkWheel) -> DockerBuilder:
    return DockerBuilder(
        sdk=SdkWheels(build_cache / "sdk-wheels", explicit_wheel=sdk_wheel.path),
        wheelhouses=Wheelhouses(build_cache / "wheelhouses"),
        base_image=BASE_IMAGE,
        pip_cache=pip_cache,
    )


def _log(store: LocalObjectStore, build_id: str) -> str:
    with store.open_read(build_log_key(build_id)) as handle:
        return handle.read().decode()


def _id() -> str:
    return f"bld_dk_{uuid.uuid4().hex[:8]}"


def test_the_scaffold_builds_into_a_tagged_image_and_a_uniform_artifact_and_rebuilds_from_cache(
    tmp_path: Path,
    make_manager: ManagerFactory,
    store: LocalObjectStore,
    outbox: Outbox,
    docker_builder: DockerBuilder,
    docker_client: object,
) -> None:
    digest = scaffold_context(store, tmp_path / "churn")
    manager = make_manager({"docker": docker_builder})
    first, second = _id(), _id()

    started = time.monotonic()
    manager.submit(spec(first, digest, builder="docker", params={"C": "0.5"}))
    assert wait_final(manager, first, timeout=1200) == "SUCCEEDED", _log(store, first)[-4000:]
    cold = time.monotonic() - started
    started = time.monotonic()
    manager.submit(spec(second, digest, builder="docker", params={"C": "0.5"}))
    assert wait_final(manager, second, timeout=600) == "SUCCEEDED", _log(store, second)[-4000:]
    warm = time.monotonic() - started
    print(f"\ndocker builder: cold {cold:.1f}s, warm {warm:.1f}s")

    finished = events(outbox, second)[-1][1]
    assert finished["image"] == f"mallard-build:{second}"
    assert finished["params"] == {"C": "0.5", "n_samples": "2000", "seed": "7"}
    assert 0.5 < finished["metrics"]["accuracy"] <= 1
    image = docker_client.images.get(finished["image"])  # type: ignore[attr-defined]
    assert image.labels["mallard.build_id"] == second and image.labels["mallard.context_digest"] == digest

    # Same context and params: every step up to the labels comes from the layer cache.
    warm_log = _log(store, second)
    assert "reusing the dependency image" in warm_log
    train_step = warm_log.split("mallard.runtime", 1)[1].split("Step", 1)[0]
    assert "Using cache" in train_step and "Running in" not in train_step
    assert warm < 30

    with store.open_read(artifact_key(finished["artifact_digest"])) as handle:
        blob = handle.read()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"model/manifest.json", "project/mallard.yaml", "project/main/model.py"} <= names
    assert manifest["builder"] == "docker" and manifest["image"] == finished["image"]
    assert manifest["metrics"] == finished["metrics"]
    first_metrics = events(outbox, first)[-1][1]["metrics"]
    assert first_metrics == finished["metrics"]  # the baked-in training, not a new one


@pytest.mark.parametrize(
    ("edits", "phase", "cause"),
    [
        (
            {"main/model.py": churn_model("raise RuntimeError('feature store unreachable')")},
            "train",
            "build() raised RuntimeError: feature store unreachable",
        ),
        (
            {"tests/test_quality.py": "def test_accuracy_is_high_enough():\n    assert False, 'accuracy too low'\n"},
            "test",
            "FAILED tests/test_quality.py::test_accuracy_is_high_enough - AssertionError: accuracy too low",
        ),
    ],
    ids=["build_raises", "failing_project_test"],
)
def test_failures_inside_the_image_build_fail_at_the_right_phase(
    tmp_path: Path,
    make_manager: ManagerFactory,
    store: LocalObjectStore,
    outbox: Outbox,
    docker_builder: DockerBuilder,
    edits: dict[str, str],
    phase: str,
    cause: str,
) -> None:
    digest = scaffold_context(store, tmp_path / "churn", **edits)
    manager = make_manager({"docker": docker_builder})
    build_id = _id()
    manager.submit(spec(build_id, digest, builder="docker"))
    assert wait_final(manager, build_id, timeout=1200) == "FAILED"
    finished = events(outbox, build_id)[-1][1]
    assert finished["failed_phase"] == phase, finished
    assert cause in finished["error_summary"], finished["error_summary"]
    assert "exit code 1" in finished["error_summary"] and "\x1b" not in finished["error_summary"]


def test_cancel_during_the_image_build_stops_the_build_container(
    tmp_path: Path,
    make_manager: ManagerFactory,
    store: LocalObjectStore,
    docker_builder: DockerBuilder,
    docker_client: object,
) -> None:
    marker = uuid.uuid4().hex
    digest = scaffold_context(
        store,
        tmp_path / "churn",
        **{
            "mallard.yaml": f"model:\n  class: main.model:ChurnModel\nbuild:\n  env:\n    TEST_MARKER: '{marker}'\n",
            "main/model.py": churn_model(SLOW_BUILD),
        },
    )
    manager = make_manager({"docker": docker_builder})
    build_id = _id()
    manager.submit(spec(build_id, digest, builder="docker"))

    api = docker_client.api  # type: ignore[attr-defined]

    def ours() -> list[dict[str, object]]:
        """This build's containers (other tests and engineers may run containers meanwhile)."""
        found = []
        for summary in api.containers(all=True):
            try:
                details = api.inspect_container(summary["Id"])
            except docker.errors.NotFound:
                continue  # removed between the listing and the look
            if f"TEST_MARKER={marker}" in (details.get("Config", {}).get("Env") or []):
                found.append(details)
        return found

    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        running = [c for c in ours() if c["State"]["Running"]]  # type: ignore[index]
        log = manager.read_log(build_id)
        if running and log is not None and SLOW_BUILD_OUTPUT in log[0]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the training step never started")
    started = time.monotonic()
    manager.cancel(build_id)
    assert wait_final(manager, build_id, timeout=30) == "CANCELLED"
    assert time.monotonic() - started < 15
    deadline = time.monotonic() + 30
    while ours() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ours() == [], "the engine removed the build's container"
