"""`python -m mallard.runtime train`: run a project's `build()` and save the trained model.

Steps: read mallard.yaml, merge params (mallard.yaml's, overridden by `--params-json`), apply
`build.env` to variables the builder has not set, put the project root and main/ on `sys.path`,
import the model class, instantiate it, run `build()` with a tracker active, check `schema()`, save
the model to `OUT/model` (copying main/ into it) and write `OUT/result.json`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mallard.model import Model
from mallard.project import ModelCodeError, Project, ProjectError, load_project
from mallard.runtime.failures import INVALID_INPUT, RuntimeFailure, raised
from mallard.schema import ModelSchema
from mallard.state import StateError, save_model
from mallard.tracking import param_text, tracking

MODEL_DIR = "model"
RESULT_FILE = "result.json"


def train_project(project_dir: Path, output: Path, *, params_json: Path | None = None) -> dict[str, Any]:
    """Train and save; returns what was written to result.json. Raises `RuntimeFailure`."""
    started = time.monotonic()
    output = output.resolve()  # before the chdir into the project below
    params_json = params_json.resolve() if params_json is not None else None
    try:
        project = load_project(project_dir)
    except ModelCodeError as exc:
        raise RuntimeFailure(str(exc)) from exc
    except ProjectError as exc:
        raise RuntimeFailure(str(exc), exit_code=INVALID_INPUT) from exc
    for warning in project.warnings:
        print(f"mallard: warning: {warning}", flush=True)
    params = {**project.params, **read_params_json(params_json)}
    target = output / MODEL_DIR
    if target.exists() and any(target.iterdir()):
        raise RuntimeFailure(f"{target} already exists and is not empty", exit_code=INVALID_INPUT)
    for name, value in project.config.build.env.items():
        os.environ.setdefault(name, value)
    os.chdir(project.root)
    model_class = import_model_class(project)
    print(f"mallard: training {project.model_class} with params {json.dumps(params, sort_keys=True)}", flush=True)
    model = _instantiate(model_class, project)
    model.params = dict(params)
    with tracking() as tracker:
        try:
            model.build()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise raised("build()", exc, root=project.root) from exc
    _check_schema(model, project)
    try:
        save_model(
            model,
            target,
            metrics=tracker.metrics,
            logged_params=tracker.params,
            project_root=project.root,
            requirements=project.requirements,
        )
    except StateError as exc:
        raise RuntimeFailure(f"saving the model failed: {exc}") from exc
    result = {
        "params": {**params, **tracker.params},
        "metrics": tracker.metrics,
        "model_class": project.model_class,
        "duration_seconds": round(time.monotonic() - started, 3),
    }
    output.mkdir(parents=True, exist_ok=True)
    (output / RESULT_FILE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    metrics = ", ".join(f"{k}={v:g}" for k, v in sorted(tracker.metrics.items())) or "none"
    print(f"mallard: saved {project.model_class} to {target} (metrics: {metrics})", flush=True)
    return result


def read_params_json(path: Path | None) -> dict[str, str]:
    """The `--params-json` overrides as text; `RuntimeFailure` (exit 2) when the file is not a flat JSON object."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(f"--params-json {path}: {exc}", exit_code=INVALID_INPUT) from exc
    if not isinstance(data, dict):
        raise RuntimeFailure(f"--params-json {path}: expected a JSON object of params", exit_code=INVALID_INPUT)
    out = {}
    for name, value in data.items():
        if isinstance(value, dict | list) or value is None:
            raise RuntimeFailure(
                f"--params-json {path}: param {name!r} must be a string, number or boolean", exit_code=INVALID_INPUT
            )
        out[str(name)] = param_text(value)
    return out


def import_model_class(project: Project) -> type[Model]:
    """Import the project's model class with the project root and main/ on `sys.path`."""
    for entry in (project.root, project.root / "main"):
        if str(entry) not in sys.path:
            sys.path.insert(0, str(entry))
    module_name, _, class_name = project.model_class.partition(":")
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise raised(f"importing {module_name}", exc, root=project.root) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise RuntimeFailure(
            f"{project.model_class} is not a mallard.Model subclass (found {type(cls).__name__})",
            exit_code=INVALID_INPUT,
        )
    return cls


def _instantiate(cls: type[Model], project: Project) -> Model:
    try:
        return cls()
    except Exception as exc:
        raise raised(f"{cls.__name__}()", exc, root=project.root) from exc


def _check_schema(model: Model, project: Project) -> None:
    try:
        schema = model.schema()
    except Exception as exc:
        raise raised("schema()", exc, root=project.root) from exc
    if not isinstance(schema, ModelSchema):
        raise RuntimeFailure(f"schema() returned {type(schema).__name__}; it must return a mallard.ModelSchema")
