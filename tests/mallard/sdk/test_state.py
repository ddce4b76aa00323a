"""The model state format: serializers per attribute, version checks, integrity and library drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mallard
from mallard.state import FORMAT_VERSION, LibraryVersionWarning, StateError, load_model, read_manifest, save_model


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


class StateModel(mallard.Model):
    """A model whose build() sets one attribute of each kind."""

    def build(self) -> None:
        self.threshold = 0.25
        self.labels = ["no", "yes"]
        self.config = {"depth": 3, "names": ["a", "b"], "nested": {"ok": True}}
        self.weights = np.arange(6, dtype=np.float32).reshape(2, 3)
        self.frame = pd.DataFrame({"a": [1, 2]})
        self.pair = ("x", 1)  # a tuple is not JSON (it would come back a list)
        self.scale = np.float64(2.5)
        self._cache = object()  # private: not saved

    def initialize_model(self) -> None:
        self._cache = "initialized"

    def schema(self) -> mallard.ModelSchema:
        return mallard.ModelSchema(inputs=[mallard.Field("x", "float")], outputs=[mallard.Field("y", "float")])

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"y": df["x"] * self.scale})


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    model = StateModel()
    model.params = {"alpha": "0.1"}
    model.build()
    return save_model(model, tmp_path / "model", metrics={"acc": 0.9}, logged_params={"rows": "10"})


def manifest_of(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "manifest.json").read_text())


def rewrite_manifest(directory: Path, **changes: Any) -> None:
    (directory / "manifest.json").write_text(json.dumps(manifest_of(directory) | changes))


def test_each_attribute_gets_its_serializer(saved: Path) -> None:
    manifest = read_manifest(saved)
    assert manifest["format"] == "mallard.model"
    assert manifest["format_version"] == FORMAT_VERSION == 1
    assert manifest["model_class"] == f"{__name__}:StateModel"
    assert manifest["params"] == {"alpha": "0.1"}
    assert manifest["logged_params"] == {"rows": "10"}
    assert manifest["metrics"] == {"acc": 0.9}
    assert manifest["schema"]["inputs"] == [{"name": "x", "type": "float", "nullable": False}]
    assert manifest["code"] is None  # this class does not live in a project's main/
    serializers = {a["name"]: a["serializer"] for a in manifest["attributes"]}
    frame = "parquet" if _has_pyarrow() else "pickle"
    assert serializers == {
        "threshold": "json",
        "labels": "json",
        "config": "json",
        "weights": "numpy",
        "frame": frame,
        "pair": "pickle",
        "scale": "pickle",
    }
    assert (saved / "attributes" / "weights.npy").is_file()
    assert "numpy" in next(a for a in manifest["attributes"] if a["name"] == "scale")["libraries"]


def test_round_trip_restores_attributes_and_runs_initialize_model(saved: Path) -> None:
    loaded = load_model(saved)
    assert isinstance(loaded, StateModel)
    assert loaded.params == {"alpha": "0.1"}
    assert loaded.threshold == 0.25
    assert loaded.labels == ["no", "yes"]
    assert loaded.config == {"depth": 3, "names": ["a", "b"], "nested": {"ok": True}}
    np.testing.assert_array_equal(loaded.weights, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert loaded.weights.dtype == np.float32
    pd.testing.assert_frame_equal(loaded.frame, pd.DataFrame({"a": [1, 2]}))
    assert loaded.pair == ("x", 1)
    assert type(loaded.scale) is np.float64
    assert loaded._cache == "initialized"
    assert not hasattr(load_model(saved, initialize=False), "_cache")


def test_newer_format_version_is_refused(saved: Path) -> None:
    rewrite_manifest(saved, format_version=99)
    with pytest.raises(StateError, match="format_version 99, newer than the 1 this Mallard reads; upgrade mallard"):
        load_model(saved)


def test_other_formats_are_refused(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(StateError, match=r"has no manifest\.json"):
        load_model(tmp_path)
    rewrite_manifest(saved, format="something.else")
    with pytest.raises(StateError, match=r"has format 'something\.else'; expected 'mallard\.model'"):
        load_model(saved)
    rewrite_manifest(saved, format="mallard.model", format_version="1")
    with pytest.raises(StateError, match="invalid format_version '1'"):
        load_model(saved)


def test_unknown_serializer_and_corruption_are_named(saved: Path) -> None:
    (saved / "attributes" / "labels.json").write_text('["tampered"]')
    with pytest.raises(
        StateError, match=r"attribute 'labels': attributes/labels\.json does not match its recorded sha256"
    ):
        load_model(saved)
    manifest = manifest_of(saved)
    manifest["attributes"] = [dict(manifest["attributes"][0], serializer="zstd-tensor")]
    rewrite_manifest(saved, attributes=manifest["attributes"])
    with pytest.raises(StateError, match="serializer 'zstd-tensor', unknown to this Mallard"):
        load_model(saved)


def test_parquet_attribute_needs_pyarrow(saved: Path) -> None:
    # pyarrow is a dependency now, so loading without it runs in a child where importing it fails.
    assert manifest_of(saved)["attributes"]
    script = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from mallard.state import StateError, load_model\n"
        "try:\n    load_model(sys.argv[1])\nexcept StateError as exc:\n    print(exc)\n"
    )
    sys_path = os.pathsep.join([str(Path(__file__).resolve().parents[3]), str(Path(__file__).parent)])
    result = subprocess.run(
        [sys.executable, "-c", script, str(saved)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": sys_path},
        timeout=120,
    )
    assert "attribute 'frame' was saved as parquet; install pyarrow to load this model" in result.stdout, (
        result.stdout + result.stderr
    )


def test_library_version_drift_warns(saved: Path) -> None:
    manifest = manifest_of(saved)
    for record in manifest["attributes"]:
        if record["serializer"] == "pickle":
            record["libraries"] = {"numpy": "0.0.1"}
    rewrite_manifest(saved, attributes=manifest["attributes"])
    with pytest.warns(LibraryVersionWarning, match=r"numpy 0.0.1 -> "):
        load_model(saved)


def test_no_warning_when_versions_match(saved: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", LibraryVersionWarning)
        load_model(saved)


def test_save_refuses_a_non_empty_directory_and_script_classes(saved: Path, tmp_path: Path) -> None:
    model = StateModel()
    model.build()
    with pytest.raises(StateError, match="exists and is not empty"):
        save_model(model, saved)

    class Local(StateModel):
        pass

    with pytest.raises(StateError, match="define the model class at the top level of a module"):
        save_model(Local(), tmp_path / "local")


def test_a_failed_save_names_the_attribute_and_leaves_the_directory_empty(tmp_path: Path) -> None:
    model = StateModel()
    model.build()
    model.lock = threading.Lock()  # type: ignore[attr-defined]
    target = tmp_path / "model"
    target.mkdir()
    with pytest.raises(StateError, match=r"cannot save attribute 'lock' \(_thread.lock\) with pickle"):
        save_model(model, target)
    assert list(target.iterdir()) == []
    del model.lock  # type: ignore[attr-defined]
    save_model(model, target)
