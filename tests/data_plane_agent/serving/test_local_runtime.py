"""A real build served by the local runtime: the scaffolded scikit-learn model is built once
(module fixture), deployed as a process of the build's own virtualenv (reused, not recreated),
and answers like the artifact loaded in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from data_plane_agent.builds import LocalBuilder, SdkWheels, VirtualEnvironments
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.serving import ServingEngine
from data_plane_agent.serving.artifacts import ArtifactCache
from data_plane_agent.serving.runtimes import LocalRuntime
from tests.data_plane_agent.serving.helpers import apply_spec, state_of, statuses, until, variation
from tests.data_plane_agent.serving.real_builds import CHURN_INPUTS, Built, build_scaffold, pip_cache, sdk_wheel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("local-build")
    wheel = sdk_wheel(root / "cache")
    builder = LocalBuilder(
        sdk=SdkWheels(root / "cache" / "sdk-wheels", explicit_wheel=wheel.path),
        environments=VirtualEnvironments(root / "cache" / "envs"),
        pip_cache=pip_cache(),
    )
    yield build_scaffold(root, builder, "bld_serve_local")


def _engine(built: Built, outbox: Outbox) -> ServingEngine:
    home = built.root / "home"
    wheel = next((built.root / "cache" / "sdk-wheels").rglob("*.whl"))
    runtime = LocalRuntime(
        artifacts=ArtifactCache(home / "serving" / "artifacts", built.store),
        sdk=SdkWheels(built.root / "cache" / "sdk-wheels", explicit_wheel=wheel),
        environments=VirtualEnvironments(built.root / "cache" / "envs"),
        work_dir=home / "serving",
        pip_cache=pip_cache(),
    )
    return ServingEngine(home=home, runtimes={"local": runtime}, store=built.store, outbox=outbox)


async def test_a_built_model_is_served_from_its_build_environment(built: Built, tmp_path: Path) -> None:
    from mallard.state import load_model

    envs_before = sorted(p.name for p in (built.root / "cache" / "envs").iterdir() if p.is_dir())
    outbox = Outbox(tmp_path / "state.db")
    engine = _engine(built, outbox)
    await engine.start()
    try:
        spec = apply_spec(
            "dep_churn",
            [variation("default", built.build_id, built.artifact_digest)],
            model="churn",
        )
        await engine.apply(spec)
        await until(lambda: state_of(engine, "dep_churn") in ("RUNNING", "FAILED"), timeout=300)
        assert state_of(engine, "dep_churn") == "RUNNING", statuses(outbox, "dep_churn")[-1]
        # The replica runs in the very virtualenv the build made: no second environment.
        assert sorted(p.name for p in (built.root / "cache" / "envs").iterdir() if p.is_dir()) == envs_before

        inputs = pa.table(CHURN_INPUTS)
        outcome = await engine.predict("churn", inputs, request_id="r1")
        unpacked = built.root / "home" / "serving" / "artifacts" / built.artifact_digest.removeprefix("sha256:")
        expected = load_model(unpacked / "model").predict(pd.DataFrame(CHURN_INPUTS))
        pd.testing.assert_frame_equal(outcome.outputs.to_pandas(), expected.reset_index(drop=True))
        assert outcome.build_id == built.build_id
        assert [f.name for f in engine.schema("churn").inputs] == list(CHURN_INPUTS)
    finally:
        await engine.shutdown(5)
        outbox.close()
