"""`python -m mallard.runtime train|check` as builders run them: exit codes and the cause on the last line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.mallard.sdk.helpers import TINY_MODEL, last_line, runtime, write_project

RAISING = (
    TINY_MODEL.replace(
        'self.offset = float(self.params.get("offset", "1.0"))',
        "self.offset = load_rows()",
    )
    + """

def load_rows() -> float:
    raise ValueError("training data has no rows")
"""
)


def train(project: Path, out: Path, *extra: str, **env: str):  # type: ignore[no-untyped-def]
    return runtime("train", "--project", str(project), "--output", str(out), *extra, cwd=project, **env)


def test_train_and_check_a_tiny_model_with_param_overrides_and_env(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p",
        model=TINY_MODEL.replace(
            'mallard.log_metric("offset_squared"',
            'mallard.log_param("home", os.environ["HOME_DIR"])\n        mallard.log_metric("offset_squared"',
        ).replace("import pandas as pd", "import os\n\nimport pandas as pd"),
        config="model: {class: main.model:TinyModel}\nbuild:\n  params: {offset: 1}\n  env: {HOME_DIR: /data}\n",
    )
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"offset": 3, "extra": True}))
    result = train(project, tmp_path / "out", "--params-json", str(params))
    assert result.returncode == 0, result.stderr
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["params"] == {"offset": "3", "extra": "true", "home": "/data"}
    assert written["metrics"] == {"offset_squared": 9.0}
    assert written["model_class"] == "main.model:TinyModel"

    checked = runtime("check", "--artifact", str(tmp_path / "out" / "model"), cwd=project)
    assert checked.returncode == 0, checked.stderr


def test_build_raising_exits_1_with_the_cause_last(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", model=RAISING)
    result = train(project, tmp_path / "out")
    assert result.returncode == 1
    assert last_line(result.stderr) == "build() raised ValueError: training data has no rows"
    assert 'File "main/model.py", line' in result.stderr
    assert "in load_rows" in result.stderr
    assert "mallard/runtime" not in result.stderr
    assert not (tmp_path / "out" / "result.json").exists()


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    project = write_project(
        tmp_path / "p", files={"main/features.py": "def ok():\n    return 1\n\nif True\n    pass\n"}
    )
    result = train(project, tmp_path / "out")
    assert result.returncode == 1
    assert last_line(result.stderr).startswith("SyntaxError in main/features.py line 4: ")


def test_missing_dependency_at_import_exits_1(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", model="import lightgbm_not_installed\n" + TINY_MODEL)
    result = train(project, tmp_path / "out")
    assert result.returncode == 1
    assert last_line(result.stderr) == (
        "importing main.model raised ModuleNotFoundError: No module named 'lightgbm_not_installed'"
    )


def test_config_errors_exit_2(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", config="build:\n  parms: {}\n")
    result = train(project, tmp_path / "out")
    assert result.returncode == 2
    assert "unknown key 'build.parms'" in last_line(result.stderr)

    good = write_project(tmp_path / "q")
    (tmp_path / "params.json").write_text('{"offset": [1, 2]}')
    result = train(good, tmp_path / "out", "--params-json", str(tmp_path / "params.json"))
    assert result.returncode == 2
    assert "param 'offset' must be a string, number or boolean" in last_line(result.stderr)


def test_unpicklable_attribute_is_named(tmp_path: Path) -> None:
    model = TINY_MODEL.replace("mallard.log_metric(", "self.handle = open(__file__)\n        mallard.log_metric(")
    project = write_project(tmp_path / "p", model=model)
    result = train(project, tmp_path / "out")
    assert result.returncode == 1
    assert "saving the model failed: cannot save attribute 'handle'" in last_line(result.stderr)


def test_check_fails_when_predict_breaks_the_schema(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", model=TINY_MODEL.replace('{"y":', '{"z":'))
    assert train(project, tmp_path / "out").returncode == 0
    result = runtime("check", "--artifact", str(tmp_path / "out" / "model"), cwd=project)
    assert result.returncode == 1
    assert last_line(result.stderr).startswith("predict() output does not match schema(): output field 'y' is missing")


def test_check_fails_when_predict_raises(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p", model=TINY_MODEL.replace('df["x"] + self.offset', 'df["nope"]'))
    assert train(project, tmp_path / "out").returncode == 0
    result = runtime("check", "--artifact", str(tmp_path / "out" / "model"), cwd=project)
    assert result.returncode == 1
    assert last_line(result.stderr) == "predict() raised KeyError: 'nope'"


def test_check_refuses_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    result = runtime("check", "--artifact", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a Mallard model: it has no manifest.json" in last_line(result.stderr)
