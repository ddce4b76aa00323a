"""The saved state of a trained model: a directory with a versioned manifest.

Format `mallard.model`, `format_version` 1. A model directory holds:

```
manifest.json           what follows, written last (its presence means the save completed)
attributes/<name>.<ext> one file per public instance attribute of the model
code/main/...           a copy of the project's main/ (the model's code), when it was known
```

`manifest.json`:

```json
{
  "format": "mallard.model",
  "format_version": 1,
  "model_class": "main.model:ChurnModel",
  "created_at": "2026-01-31T12:00:00Z",
  "python": "3.11.7",
  "libraries": {"scikit-learn": "1.5.2", "numpy": "2.1.0", "pandas": "2.2.3"},
  "params": {"C": "0.5"},
  "logged_params": {"n_samples": "2000"},
  "metrics": {"accuracy": 0.93},
  "schema": {"inputs": [{"name": "age", "type": "int", "nullable": false}], "outputs": [...]},
  "attributes": [
    {"name": "classifier", "serializer": "pickle", "file": "attributes/classifier.pkl",
     "type": "sklearn.pipeline.Pipeline", "sha256": "<hex>",
     "libraries": {"scikit-learn": "1.5.2", "numpy": "2.1.0", "scipy": "1.14.1"}},
    {"name": "threshold", "serializer": "json", "file": "attributes/threshold.json",
     "type": "float", "sha256": "<hex>"}
  ],
  "code": "code",
  "requirements": ["scikit-learn", "pandas"]
}
```

- `params` are the build params the model saw as `self.params`; `logged_params` and `metrics`
  are what `build()` logged. `libraries` holds the version of every installed distribution whose
  modules were imported when the model was saved (the standard library aside), and `python` the
  interpreter version. `created_at` honours `SOURCE_DATE_EPOCH`.
- Serializers, chosen per attribute in this order: `json` (None, bool, int, float, str and
  lists / string-keyed dicts of those, NaN and infinity excluded), `numpy` (`.npy`, non-object
  `numpy.ndarray`, read back without pickle), `parquet` (a `pandas.DataFrame`, only when pyarrow
  is installed at save time and the frame fits parquet - string column names, one type per
  column; loading one needs pyarrow too and says so), and `pickle` for the rest
  (fitted estimators, tuples, numpy scalars, ...).
- Why pickle at all: fitted scikit-learn (and most library) estimators have no stable,
  library-independent format, and pickle is what their authors support - but only between the
  same library versions. So pickle is used per attribute, never for the whole model: the manifest
  stays readable without unpickling, a failure names the attribute, and each pickled attribute
  records in `libraries` the versions of the distributions whose classes and functions it
  references. Loading warns (`LibraryVersionWarning`) when those versions, or the Python minor
  version, differ from the installed ones. `sha256` is checked on load. Unpickling runs code:
  load only artifacts your own builds produced.
- `code` is the copy of main/ that `load_model` puts on `sys.path` (`code` and `code/main`), so
  an artifact loads without its project. `null` when the code was not known at save time; the
  model class must then be importable.

Readers refuse another `format` and any `format_version` newer than theirs. A change that old
readers could misread raises `FORMAT_VERSION`; adding manifest keys does not.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import json
import math
import os
import pickle
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mallard.model import Model
from mallard.packing import list_context_files
from mallard.schema import ModelSchema

FORMAT = "mallard.model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ATTRIBUTES_DIR = "attributes"
CODE_DIR = "code"
_RESERVED = frozenset({"params"})  # restored from the manifest, not saved as an attribute


class StateError(Exception):
    """A model cannot be saved, or a directory is not a model this version of Mallard can load."""


class LibraryVersionWarning(UserWarning):
    """A loaded model was saved with different library versions than the ones installed now."""


def save_model(
    model: Model,
    directory: str | os.PathLike[str],
    *,
    metrics: dict[str, float] | None = None,
    logged_params: dict[str, str] | None = None,
    project_root: str | os.PathLike[str] | None = None,
    requirements: list[str] | None = None,
) -> Path:
    """Save a trained model to `directory` (absent or empty) in the format described above.

    `project_root` is the model project whose `main/` is copied into the artifact; when omitted
    it is found from the model class's file if that lies in a project's `main/`.
    """
    target = Path(directory)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise StateError(f"cannot save the model into {target}: it exists and is not empty")
    cls = type(model)
    class_path = _class_path(cls)
    schema = model.schema()
    if not isinstance(schema, ModelSchema):
        raise StateError(f"{cls.__name__}.schema() returned {type(schema).__name__}, not a mallard.ModelSchema")
    root = Path(project_root) if project_root is not None else _project_of(cls)
    (target / ATTRIBUTES_DIR).mkdir(parents=True, exist_ok=True)
    try:
        records = [_save_attribute(target, name, value) for name, value in sorted(vars(model).items()) if _saved(name)]
        code = None
        if root is not None and (root / "main").is_dir():
            _copy_code(root, target / CODE_DIR)
            code = CODE_DIR
    except BaseException:
        shutil.rmtree(target / ATTRIBUTES_DIR, ignore_errors=True)  # leave the directory as empty as it was
        shutil.rmtree(target / CODE_DIR, ignore_errors=True)
        raise
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_class": class_path,
        "created_at": _created_at(),
        "python": platform.python_version(),
        "libraries": imported_library_versions(),
        "params": dict(getattr(model, "params", {}) or {}),
        "logged_params": dict(logged_params or {}),
        "metrics": dict(metrics or {}),
        "schema": schema.to_dict(),
        "attributes": records,
        "code": code,
        "requirements": list(requirements or []),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=True)
    (target / MANIFEST).write_text(text + "\n", encoding="utf-8")
    return target


def _copy_code(root: Path, destination: Path) -> None:
    # The files a build context would hold, so data sets ignored in main/ stay out of the artifact.
    # Symlinks are copied as what they point to: the artifact must not depend on the project.
    for rel in list_context_files(root):
        if not rel.startswith("main/"):
            continue
        source, copy = root / rel, destination / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        try:
            if source.is_dir():
                shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, copy)
        except OSError as exc:
            raise StateError(f"cannot copy {rel} into the model: {exc}") from exc


def _saved(name: str) -> bool:
    return not name.startswith("_") and name not in _RESERVED


def _class_path(cls: type) -> str:
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise StateError(
            f"{cls.__qualname__} is defined in a script or a function; define the model class at the top "
            "level of a module in main/ so the artifact can import it"
        )
    return f"{cls.__module__}:{cls.__qualname__}"


_EXTENSIONS = {"json": "json", "numpy": "npy", "parquet": "parquet", "pickle": "pkl"}


def _save_attribute(target: Path, name: str, value: Any) -> dict[str, Any]:
    serializer = _serializer_for(value)
    if serializer == "parquet" and not _wrote_parquet(value, target / f"{ATTRIBUTES_DIR}/{name}.parquet"):
        serializer = "pickle"
    rel = f"{ATTRIBUTES_DIR}/{name}.{_EXTENSIONS[serializer]}"
    path = target / rel
    pickled_with: dict[str, str] | None = None
    try:
        if serializer == "parquet":
            pass  # written above
        elif serializer == "json":
            path.write_text(json.dumps(value, allow_nan=False, sort_keys=True), encoding="utf-8")
        elif serializer == "numpy":
            import numpy as np

            with path.open("wb") as f:
                np.save(f, value, allow_pickle=False)
        else:
            with path.open("wb") as f:
                pickler = _RecordingPickler(f)
                pickler.dump(value)
            pickled_with = _distribution_versions(pickler.modules)
    except Exception as exc:
        path.unlink(missing_ok=True)
        raise StateError(
            f"cannot save attribute {name!r} ({_type_name(value)}) with {serializer}: {type(exc).__name__}: {exc}; "
            "give it a name starting with '_' and recreate it in initialize_model() if it need not be saved"
        ) from exc
    record: dict[str, Any] = {
        "name": name,
        "serializer": serializer,
        "file": rel,
        "type": _type_name(value),
        "sha256": _file_sha256(path),
    }
    if pickled_with is not None:
        record["libraries"] = pickled_with
    return record


class _RecordingPickler(pickle.Pickler):
    """A pickler that notes the top-level module of every class and function it pickles by reference."""

    def __init__(self, file: Any) -> None:
        super().__init__(file, protocol=5)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        by_reference = isinstance(obj, type) or (callable(obj) and hasattr(obj, "__qualname__"))
        module = getattr(obj if by_reference else type(obj), "__module__", None)
        if isinstance(module, str):
            self.modules.add(module.split(".", 1)[0])
        return NotImplemented


def _serializer_for(value: Any) -> str:
    if _is_json_value(value):
        return "json"
    numpy = sys.modules.get("numpy")
    if numpy is not None and type(value) is numpy.ndarray and not value.dtype.hasobject:
        return "numpy"
    pandas = sys.modules.get("pandas")
    if pandas is not None and type(value) is pandas.DataFrame and _has_pyarrow():
        return "parquet"
    return "pickle"


def _wrote_parquet(frame: Any, path: Path) -> bool:
    # Parquet cannot hold every frame (non-string column names, mixed-type object columns);
    # those fall back to pickle rather than failing the build.
    try:
        frame.to_parquet(path)
    except Exception:
        path.unlink(missing_ok=True)
        return False
    return True


def _is_json_value(value: Any) -> bool:
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(_is_json_value(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _is_json_value(v) for k, v in value.items())
    return False


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _project_of(cls: type) -> Path | None:
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if not file:
        return None
    for parent in Path(file).resolve().parents:
        if parent.name == "main" and (parent.parent / "mallard.yaml").is_file():
            return parent.parent
    return None


def _created_at() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = int(epoch) if epoch and epoch.isdigit() else int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def imported_library_versions() -> dict[str, str]:
    """Versions of the installed distributions whose top-level modules are imported right now."""
    return _distribution_versions({name.split(".", 1)[0] for name in list(sys.modules)})


def _distribution_versions(modules: set[str]) -> dict[str, str]:
    owners = _module_owners()
    versions: dict[str, str] = {}
    for module in sorted(modules):
        if module in sys.stdlib_module_names or module.startswith("_"):
            continue
        for dist in owners.get(module, []):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    return dict(sorted(versions.items()))


@functools.cache
def _module_owners() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


# ---- loading -----------------------------------------------------------------------------


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked manifest of a model directory; `StateError` if it is not one this Mallard can read."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise StateError(f"{directory} is not a Mallard model: it has no {MANIFEST}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise StateError(f"{path} has format {found!r}; expected {FORMAT!r}")
    version = manifest.get("format_version")
    if type(version) is not int or version < 1:
        raise StateError(f"{path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise StateError(
            f"{path} has format_version {version}, newer than the {FORMAT_VERSION} this Mallard reads; "
            "upgrade mallard to load this model"
        )
    return manifest


def load_model(directory: str | os.PathLike[str], *, initialize: bool = True) -> Model:
    """Load a saved model: check the format, import its class, restore its attributes, run `initialize_model()`.

    `__init__` is not called. Warns with `LibraryVersionWarning` when the saved library versions
    differ from the installed ones. `initialize=False` skips `initialize_model()`.
    """
    root = Path(directory).resolve()
    manifest = read_manifest(root)
    if manifest.get("code"):
        code = root / manifest["code"]
        for entry in (code / "main", code):
            if entry.is_dir() and str(entry) not in sys.path:
                sys.path.insert(0, str(entry))
    _warn_on_version_drift(manifest)
    cls = _import_class(manifest["model_class"])
    model = cls.__new__(cls)
    model.params = dict(manifest.get("params", {}))
    for record in manifest.get("attributes", []):
        setattr(model, record["name"], _load_attribute(root, record))
    if initialize:
        model.initialize_model()
    return model


def _import_class(class_path: str) -> type[Model]:
    module_name, _, qualname = class_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StateError(f"cannot import the model class {class_path}: {exc}") from exc
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, Model)):
        raise StateError(f"{class_path} is not a mallard.Model subclass in {getattr(module, '__file__', module_name)}")
    return obj


def _load_attribute(root: Path, record: dict[str, Any]) -> Any:
    name, serializer = record["name"], record["serializer"]
    path = root / record["file"]
    if not path.resolve().is_relative_to(root) or not path.is_file():
        raise StateError(f"attribute {name!r}: file {record['file']} is missing from the model directory")
    expected = record.get("sha256")
    if expected and _file_sha256(path) != expected:
        raise StateError(
            f"attribute {name!r}: {record['file']} does not match its recorded sha256; the model is corrupt"
        )
    if serializer == "json":
        return json.loads(path.read_text(encoding="utf-8"))
    if serializer == "numpy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if serializer == "parquet":
        if not _has_pyarrow():
            raise StateError(f"attribute {name!r} was saved as parquet; install pyarrow to load this model")
        import pandas as pd

        return pd.read_parquet(path)
    if serializer == "pickle":
        with path.open("rb") as f:
            return pickle.load(f)
    raise StateError(f"attribute {name!r} uses serializer {serializer!r}, unknown to this Mallard; upgrade mallard")


def _warn_on_version_drift(manifest: dict[str, Any]) -> None:
    # Only the libraries that pickled attributes reference matter for loading; the rest of
    # `libraries` is a record of the build environment.
    pickled: dict[str, str] = {}
    for record in manifest.get("attributes", []):
        if record.get("serializer") == "pickle":
            pickled.update(record.get("libraries", {}))
    if not pickled:
        return
    drift = []
    saved_python = str(manifest.get("python", ""))
    if saved_python.rsplit(".", 1)[0] != platform.python_version().rsplit(".", 1)[0]:
        drift.append(f"python {saved_python} -> {platform.python_version()}")
    for dist, version in sorted(pickled.items()):
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != version:
            drift.append(f"{dist} {version} -> {installed}")
    if drift:
        warnings.warn(
            f"model {manifest['model_class']} was saved with other library versions ({', '.join(drift)}); "
            "pickled attributes may not load or may behave differently",
            LibraryVersionWarning,
            stacklevel=3,
        )
