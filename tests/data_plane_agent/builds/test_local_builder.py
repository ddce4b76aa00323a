"""The local builder end to end on the scaffolded scikit-learn project: real virtualenvs, real pip,
the real SDK runtime and the project's own tests."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from data_plane_agent.builds import LocalBuilder
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore, artifact_key, build_log_key
from tests.data_plane_agent.builds.conftest import ManagerFactory, scaffold_context
from tests.data_plane_agent.builds.helpers import (
    SLOW_BUILD,
    churn_model,
    events,
    pid_alive,
    spec,
    wait_final,
    wait_phase,
)

pytestmark = pytest.mark.slow

MODEL = Path("main/model.py")
SCAFFOLD_REQUIREMENTS = "scikit-learn>=1.3\npandas>=2\nnumpy>=1.26\n"


def _log(store: LocalObjectStore, build_id: str) -> str:
    with store.open_read(build_log_key(build_id)) as handle:
        return handle.read().decode()


def _phase_seconds(view: dict[str, object], phase: str) -> float:
    from datetime import datetime

    for entry in view["phases"]:  # type: ignore[attr-defined]
        if entry["phase"] == phase:
            started = datetime.fromisoformat(entry["started_at"])
            finished = datetime.fromisoformat(entry["finished_at"])
            return (finished - started).total_seconds()
    raise AssertionError(f"no {phase} phase in {view}")


def test_the_scaffold_builds_into_an_artifact_that_reproduces_its_predictions(
    tmp_path: Path,
    make_manager: ManagerFactory,
    store: LocalObjectStore,
    outbox: Outbox,
    local_builder: LocalBuilder,
) -> None:
    from mallard.runtime.train import train_project
    from mallard.state import load_model

    digest = scaffold_context(store, tmp_path / "churn")
    manager = make_manager({"local": local_builder})

    started = time.monotonic()
    manager.submit(spec("bld_cold", digest, params={"C": "0.5"}))
    assert wait_final(manager, "bld_cold", timeout=900) == "SUCCEEDED", _log(store, "bld_cold")[-3000:]
    cold = time.monotonic() - started
    started = time.monotonic()
    manager.submit(spec("bld_warm", digest, params={"C": "0.5"}))
    assert wait_final(manager, "bld_warm", timeout=300) == "SUCCEEDED", _log(store, "bld_warm")[-3000:]
    warm = time.monotonic() - started
    print(f"\nlocal builder: cold {cold:.1f}s, warm {warm:.1f}s")

    cold_log, warm_log = _log(store, "bld_cold"), _log(store, "bld_warm")
    assert "creating environment" in cold_log or "reusing the ready environment" in cold_log
    assert "reusing the ready environment" in warm_log and "pip install" not in warm_log
    assert "2 passed" in warm_log  # the project's own tests ran against the trained model
    assert _phase_seconds(manager.get("bld_warm").view(), "resolve_dependencies") < 5  # type: ignore[union-attr]
    assert warm < 30

    finished = events(outbox, "bld_warm")[-1][1]
    assert finished["status"] == "SUCCEEDED"
    assert finished["params"] == {"C": "0.5", "n_samples": "2000", "seed": "7"}
    assert set(finished["metrics"]) == {"accuracy", "churn_rate"} and 0.5 < finished["metrics"]["accuracy"] <= 1

    # The artifact holds the trained state, loadable on its own, predicting like a fresh training.
    with store.open_read(artifact_key(finished["artifact_digest"])) as handle:
        blob = handle.read()
    unpacked = tmp_path / "artifact"
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(unpacked, filter="data")
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert manifest["build_id"] == "bld_warm" and manifest["context_digest"] == digest
    assert manifest["metrics"] == finished["metrics"] and manifest["builder"] == "local"
    assert (unpacked / "project" / "tests" / "test_model.py").is_file()
    reference_dir = tmp_path / "reference"
    (tmp_path / "params.json").write_text(json.dumps({"C": "0.5"}))
    train_project(tmp_path / "churn", reference_dir, params_json=tmp_path / "params.json")
    built, reference = load_model(unpacked / "model"), load_model(reference_dir / "model")
    inputs = pd.DataFrame(
        {"tenure_months": [1.0, 30.0, 70.0], "monthly_spend": [120.0, 60.0, 20.0], "support_calls": [5, 1, 0]}
    )
    pd.testing.assert_frame_equal(built.predict(inputs), reference.predict(inputs))


FAILURES = {
    "syntax_error": (
        {str(MODEL): "import mallard\n\nclass ChurnModel(mallard.Model:\n    pass\n"},
        "train",
        "SyntaxError in main/model.py line 3",
    ),
    "build_raises": (
        {str(MODEL): churn_model("raise ValueError('the customers table is empty')")},
        "train",
        "build() raised ValueError: the customers table is empty",
    ),
    "failing_project_test": (
        {"tests/test_quality.py": "def test_accuracy_is_high_enough():\n    assert 0.76 > 0.99, 'accuracy too low'\n"},
        "test",
        "FAILED tests/test_quality.py::test_accuracy_is_high_enough - AssertionError: accuracy too low",
    ),
    "unresolvable_dependency": (
        {"main/requirements.txt": SCAFFOLD_REQUIREMENTS + "this-package-does-not-exist-mallard==0.0.1\n"},
        "resolve_dependencies",
        "this-package-does-not-exist-mallard",
    ),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_failures_fail_at_the_right_phase_with_a_summary_that_names_the_cause(
    case: str,
    tmp_path: Path,
    make_manager: ManagerFactory,
    store: LocalObjectStore,
    outbox: Outbox,
    local_builder: LocalBuilder,
) -> None:
    edits, phase, cause = FAILURES[case]
    digest = scaffold_context(store, tmp_path / "churn", **edits)
    manager = make_manager({"local": local_builder})
    manager.submit(spec(f"bld_{case}", digest))
    assert wait_final(manager, f"bld_{case}", timeout=900) == "FAILED"
    finished = events(outbox, f"bld_{case}")[-1][1]
    assert finished["failed_phase"] == phase, finished
    assert cause in finished["error_summary"], finished["error_summary"]
    assert finished["artifact_digest"] is None and not list(store.list("artifacts/"))
    assert cause in _log(store, f"bld_{case}")


def test_cancel_during_training_stops_it_at_once(
    tmp_path: Path,
    make_manager: ManagerFactory,
    store: LocalObjectStore,
    outbox: Outbox,
    local_builder: LocalBuilder,
) -> None:
    digest = scaffold_context(
        store,
        tmp_path / "churn",
        **{str(MODEL): churn_model(SLOW_BUILD)},
    )
    manager = make_manager({"local": local_builder})
    manager.submit(spec("bld_long", digest))
    wait_phase(manager, "bld_long", "train", timeout=900)
    pid = manager.get("bld_long").pid  # type: ignore[union-attr]
    assert pid is not None
    started = time.monotonic()
    manager.cancel("bld_long")
    assert wait_final(manager, "bld_long", timeout=15) == "CANCELLED"
    assert time.monotonic() - started < 5 and not pid_alive(pid)
    assert events(outbox, "bld_long")[-2][1] == {
        "build_id": "bld_long",
        "phase": "train",
        "state": "cancelled",
        "at_unix_ms": events(outbox, "bld_long")[-2][1]["at_unix_ms"],
    }


def test_cancel_during_pip_install_leaves_no_half_made_environment(
    tmp_path: Path,
    make_manager: ManagerFactory,
    store: LocalObjectStore,
    build_cache: Path,
    local_builder: LocalBuilder,
) -> None:
    # A requirement set of its own, so this build has to create (not reuse) an environment.
    digest = scaffold_context(
        store, tmp_path / "churn", **{"main/requirements.txt": SCAFFOLD_REQUIREMENTS + "scipy>=1\n"}
    )
    manager = make_manager({"local": local_builder})
    manager.submit(spec("bld_pip", digest))

    def pip_running() -> bool:
        found = manager.read_log("bld_pip")
        return found is not None and b"-m pip install" in found[0]

    deadline = time.monotonic() + 300
    while not pip_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pip_running()
    manager.cancel("bld_pip")
    assert wait_final(manager, "bld_pip", timeout=15) == "CANCELLED"
    record = manager.get("bld_pip")
    assert record is not None and record.failed_phase == "resolve_dependencies"
    envs = build_cache / "envs"
    half_made = [p for p in envs.iterdir() if p.is_dir() and not (p / ".mallard-ready").exists()]
    assert half_made == []
