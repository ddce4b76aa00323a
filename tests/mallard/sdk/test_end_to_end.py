"""The scaffolded example, the way a build runs it: validate, train, check, project tests, reload."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mallard.project import validate_project
from mallard.runtime.train import import_model_class
from mallard.scaffold import ScaffoldError, init_project
from mallard.state import load_model, read_manifest
from mallard.tracking import tracking
from tests.mallard.sdk.helpers import isolated_imports, runtime, subprocess_env

CUSTOMERS = pd.DataFrame(
    {
        "tenure_months": [1.0, 12.0, 30.0, 60.0, 70.0],
        "monthly_spend": [120.0, 80.0, 55.0, 30.0, 20.0],
        "support_calls": [7, 3, 1, 0, 0],
    }
)


@dataclass(frozen=True)
class Built:
    project_dir: Path
    out: Path
    result: dict[str, Any]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """`mallard models init`, then a build's train step with a --param override."""
    tmp_path = tmp_path_factory.mktemp("e2e")
    project_dir = tmp_path / "churn"
    init_project(project_dir, name="churn")
    out = tmp_path / "out"
    overrides = tmp_path / "params.json"
    overrides.write_text(json.dumps({"C": 0.5}))
    trained = runtime(
        "train", "--project", str(project_dir), "--output", str(out), "--params-json", str(overrides), cwd=project_dir
    )
    assert trained.returncode == 0, trained.stderr
    return Built(project_dir, out, json.loads((out / "result.json").read_text()))


def test_scaffold_is_a_valid_project(tmp_path: Path) -> None:
    written = init_project(tmp_path, name="churn")
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {
        "mallard.yaml",
        ".mallardignore",
        "README.md",
        "main/model.py",
        "main/requirements.txt",
        "tests/test_model.py",
    }
    project = validate_project(tmp_path)
    assert project.model_class == "main.model:ChurnModel"
    assert project.name == "churn"
    assert project.requirements == ["scikit-learn>=1.3", "pandas>=2", "numpy>=1.26"]
    assert project.warnings == []


def test_train_records_params_metrics_and_a_versioned_artifact(built: Built) -> None:
    assert built.result["params"] == {"C": "0.5", "n_samples": "2000", "seed": "7"}
    assert 0.6 < built.result["metrics"]["accuracy"] <= 1.0
    manifest = read_manifest(built.out / "model")
    assert manifest["format_version"] == 1
    assert manifest["model_class"] == "main.model:ChurnModel"
    assert manifest["params"] == built.result["params"]
    assert manifest["metrics"] == built.result["metrics"]
    classifier = next(a for a in manifest["attributes"] if a["name"] == "classifier")
    assert classifier["serializer"] == "pickle"
    assert {"scikit-learn", "numpy"} <= set(classifier["libraries"])
    assert (built.out / "model" / "code" / "main" / "model.py").is_file()


def test_check_and_the_projects_own_tests_pass_against_the_artifact(built: Built) -> None:
    checked = runtime("check", "--artifact", str(built.out / "model"), cwd=built.project_dir)
    assert checked.returncode == 0, checked.stderr
    assert "check passed" in checked.stdout

    project_tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=built.project_dir,
        env=subprocess_env(MALLARD_MODEL_DIR=str(built.out / "model")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert project_tests.returncode == 0, project_tests.stdout + project_tests.stderr
    assert "2 passed" in project_tests.stdout


def test_loaded_artifact_predicts_exactly_like_the_model_trained_in_process(built: Built) -> None:
    project = validate_project(built.project_dir)
    with isolated_imports():
        in_process = import_model_class(project)()
        in_process.params = {**project.params, "C": "0.5"}
        with tracking() as tracker:
            in_process.build()
        assert tracker.metrics == built.result["metrics"]

        loaded = load_model(built.out / "model")

        assert loaded.params == in_process.params
        pd.testing.assert_frame_equal(loaded.predict(CUSTOMERS), in_process.predict(CUSTOMERS), check_exact=True)


def test_artifact_loads_in_a_fresh_interpreter_without_the_project(built: Built, tmp_path: Path) -> None:
    """The artifact carries main/, so nothing but the artifact directory is needed."""
    script = (
        "import sys; from mallard.state import load_model; m = load_model(sys.argv[1]); "
        "print(m.predict(m.schema().example(2)).shape)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script, str(built.out / "model")],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "(2, 2)"


def test_init_refuses_a_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ScaffoldError, match="is not empty"):
        init_project(tmp_path)
    init_project(tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "main" / "model.py").is_file()


def test_init_refuses_a_bad_name(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="invalid model name"):
        init_project(tmp_path / "x", name="no spaces please")


def test_load_built_model_needs_the_model_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    from mallard.testing import load_built_model

    monkeypatch.delenv("MALLARD_MODEL_DIR", raising=False)
    with pytest.raises(RuntimeError, match="MALLARD_MODEL_DIR is not set"):
        load_built_model()
