"""A real Docker build served by the Docker runtime: a container of the build's image on the host
network, bound to 127.0.0.1, answering like the artifact loaded in-process."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pandas as pd
import pyarrow as pa
import pytest

from data_plane_agent.builds import SdkWheels, Wheelhouses
from data_plane_agent.builds.docker import DEPS_REPOSITORY, DockerBuilder, docker_reachable
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.serving import ServingEngine
from data_plane_agent.serving.artifacts import ArtifactCache
from data_plane_agent.serving.docker_runtime import OWNER_LABEL, DockerRuntime
from data_plane_agent.settings import AgentSettings
from tests.data_plane_agent.serving.helpers import apply_spec, state_of, statuses, until, variation
from tests.data_plane_agent.serving.real_builds import CHURN_INPUTS, Built, build_scaffold, pip_cache, sdk_wheel
from tests.helpers.servers import skip_or_fail

pytestmark = pytest.mark.slow

BASE_IMAGE = AgentSettings.model_fields["docker_base_image"].default


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    reachable, why = docker_reachable()
    if not reachable:
        skip_or_fail(f"no Docker engine reachable ({why}); start dockerd (see RECIPES / .ci/run)")
    client = docker.from_env()
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        skip_or_fail(f"the base image {BASE_IMAGE} is missing; make it with debootstrap + docker import (.ci/run)")
    deps_before = {tag for image in client.images.list(name=DEPS_REPOSITORY) for tag in image.tags}
    root = tmp_path_factory.mktemp("docker-build")
    wheel = sdk_wheel(root / "cache")
    builder = DockerBuilder(
        sdk=SdkWheels(root / "cache" / "sdk-wheels", explicit_wheel=wheel.path),
        wheelhouses=Wheelhouses(root / "cache" / "wheelhouses"),
        base_image=BASE_IMAGE,
        pip_cache=pip_cache(),
    )
    build_id = f"bld_serve_dk_{uuid.uuid4().hex[:8]}"
    try:
        yield build_scaffold(root, builder, build_id)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(f"mallard-build:{build_id}", force=True)
        for image in client.images.list(name=DEPS_REPOSITORY):
            for tag in set(image.tags) - deps_before:
                with contextlib.suppress(docker.errors.APIError):
                    client.images.remove(tag)
        client.close()


async def test_a_docker_build_is_served_by_a_container_of_its_image(built: Built, tmp_path: Path) -> None:
    from mallard.state import load_model

    assert built.image == f"mallard-build:{built.build_id}"
    home = tmp_path / "home"
    runtime = DockerRuntime(
        artifacts=ArtifactCache(home / "serving" / "artifacts", built.store), work_dir=home / "serving", owner=str(home)
    )
    outbox = Outbox(tmp_path / "state.db")
    engine = ServingEngine(home=home, runtimes={"docker": runtime}, store=built.store, outbox=outbox)
    await engine.start()
    client = docker.APIClient()
    try:
        spec = apply_spec(
            "dep_dk",
            [variation("default", built.build_id, built.artifact_digest, image=built.image)],
            model="churn",
            runtime="docker",
        )
        await engine.apply(spec)
        await until(lambda: state_of(engine, "dep_dk") in ("RUNNING", "FAILED"), timeout=180)
        assert state_of(engine, "dep_dk") == "RUNNING", statuses(outbox, "dep_dk")[-1]

        mine = {"label": f"{OWNER_LABEL}={runtime.owner}"}
        [container] = client.containers(filters=mine)
        assert container["HostConfig"]["NetworkMode"] == "host" and container["Image"] == built.image

        outcome = await engine.predict("churn", pa.table(CHURN_INPUTS), request_id="r1")
        unpacked = home / "serving" / "artifacts" / built.artifact_digest.removeprefix("sha256:")
        expected = load_model(unpacked / "model").predict(pd.DataFrame(CHURN_INPUTS))
        pd.testing.assert_frame_equal(outcome.outputs.to_pandas(), expected.reset_index(drop=True))
        assert outcome.build_id == built.build_id
    finally:
        await engine.shutdown(5)
        outbox.close()
    assert client.containers(all=True, filters={"label": f"{OWNER_LABEL}={runtime.owner}"}) == []  # removed
    client.close()
