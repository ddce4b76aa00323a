"""Model projects: the directory layout, `mallard.yaml`, and local validation before a build.

```
DIR/
  mallard.yaml        build config (below)
  main/               model code: a module defining one mallard.Model subclass, plus
                      requirements.txt or pyproject.toml ([project] dependencies)
  tests/              pytest tests, run inside the build against the trained model
```

```yaml
model:
  class: main.model:ChurnModel   # optional when main/ defines exactly one Model subclass
  name: churn                    # optional; defaults to the directory name
build:
  python_requirements: ["lightgbm>=4"]   # extra dependencies on top of main/'s
  env: {OMP_NUM_THREADS: "1"}
  params: {C: 0.5, n_samples: 2000}       # scalars; the model sees them as text in self.params
  tags: [baseline]
  resources: {cpus: 1, memory: 2Gi}
```

Validation reads the code without running it (an `ast` parse), so it needs none of the model's
dependencies and never starts training.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mallard.packing import list_context_files
from mallard.project_source import (
    ModelClassInfo,
    ModelCodeError,
    ProjectError,
    find_model_classes,
    resolve_class_path,
)
from mallard.tracking import param_text

CONFIG_FILE = "mallard.yaml"
CODE_DIR = "main"
TESTS_DIR = "tests"

_KEYS: dict[str, frozenset[str]] = {
    "": frozenset({"model", "build"}),
    "model": frozenset({"class", "name"}),
    "build": frozenset({"python_requirements", "env", "params", "tags", "resources"}),
    "build.resources": frozenset({"cpus", "memory"}),
}
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

__all__ = [
    "BuildConfig",
    "ModelCodeError",
    "Project",
    "ProjectConfig",
    "ProjectError",
    "load_project",
    "read_config",
    "validate_project",
]


@dataclass(frozen=True)
class BuildConfig:
    """The `build:` section of mallard.yaml, normalised (params and env values as text)."""

    python_requirements: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectConfig:
    """mallard.yaml, parsed and checked."""

    model_class: str | None = None
    model_name: str | None = None
    build: BuildConfig = field(default_factory=BuildConfig)


@dataclass(frozen=True)
class Project:
    """A loaded model project.

    `requirements` are main/'s dependencies followed by `build.python_requirements`;
    `requirements_file` is main/requirements.txt or main/pyproject.toml when there is one.
    `model_class` is `module:Class`, importable with the project root and main/ on `sys.path`.
    """

    root: Path
    config: ProjectConfig
    requirements: list[str]
    requirements_file: Path | None
    model_class: str
    name: str
    warnings: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, str]:
        """The build params of mallard.yaml."""
        return dict(self.config.build.params)


def load_project(directory: str | os.PathLike[str]) -> Project:
    """Read mallard.yaml and main/, and find the model class; `ProjectError` when something is wrong."""
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ProjectError(f"{directory} is not a directory")
    config = read_config(root / CONFIG_FILE)
    code = root / CODE_DIR
    if not code.is_dir():
        raise ProjectError(
            f"{root} has no {CODE_DIR}/ directory: put the model code (a module defining a mallard.Model "
            "subclass) in main/",
            file=f"{CODE_DIR}/",
        )
    files = _code_files(root)
    info = resolve_class_path(root, config.model_class, files) if config.model_class else _discover(root, files)
    requirements, requirements_file = _requirements(root)
    warnings = []
    if requirements_file is None:
        warnings.append(
            "main/ has no requirements.txt or pyproject.toml: the build installs only mallard.yaml's "
            "build.python_requirements"
        )
    if not (root / TESTS_DIR).is_dir():
        warnings.append("the project has no tests/ directory: the build runs only Mallard's own model check")
    if info.unresolved_bases:
        warnings.append(
            f"{info.path}: {info.name} derives from {', '.join(info.unresolved_bases)}, which the local check "
            "cannot read; schema() and predict() are checked when the model is built"
        )
    return Project(
        root=root,
        config=config,
        requirements=requirements + config.build.python_requirements,
        requirements_file=requirements_file,
        model_class=f"{info.module}:{info.name}",
        name=config.model_name or root.name,
        warnings=warnings,
    )


def validate_project(directory: str | os.PathLike[str]) -> Project:
    """`load_project` plus the checks a build would otherwise fail late on: schema() and predict() defined."""
    project = load_project(directory)
    root = project.root
    info = resolve_class_path(root, project.model_class, _code_files(root))
    for method, hint in (
        ("schema", "return mallard.ModelSchema(inputs=[...], outputs=[...])"),
        ("predict", "take a pandas DataFrame and return one"),
    ):
        if info.defines(method) is False:
            raise ProjectError(
                f"{info.path}: {info.name} does not define {method}(); every model must ({hint})",
                file=info.path,
                field=method,
            )
    return project


def _code_files(root: Path) -> list[str]:
    try:
        packed = list_context_files(root)
    except Exception as exc:
        raise ProjectError(str(exc)) from exc
    return [p for p in packed if p.startswith(f"{CODE_DIR}/") and p.endswith(".py")]


def _discover(root: Path, files: list[str]) -> ModelClassInfo:
    found = find_model_classes(root, files)
    if not found:
        raise ProjectError(
            "no mallard.Model subclass found in main/: define one (class MyModel(mallard.Model)) "
            "or name it in mallard.yaml as model.class: main.module:ClassName",
            file=f"{CODE_DIR}/",
        )
    if len(found) > 1:
        names = ", ".join(f"{c.module}:{c.name}" for c in found)
        raise ProjectError(
            f"main/ defines {len(found)} mallard.Model subclasses ({names}); choose one in mallard.yaml "
            "with model.class",
            file=CONFIG_FILE,
            field="model.class",
        )
    return found[0]


def _requirements(root: Path) -> tuple[list[str], Path | None]:
    txt = root / CODE_DIR / "requirements.txt"
    if txt.is_file():
        lines = [line.split("#", 1)[0].strip() for line in txt.read_text(encoding="utf-8").splitlines()]
        return [line for line in lines if line], txt
    toml = root / CODE_DIR / "pyproject.toml"
    if toml.is_file():
        try:
            data = tomllib.loads(toml.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ProjectError(f"main/pyproject.toml: {exc}", file="main/pyproject.toml") from exc
        deps = data.get("project", {}).get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise ProjectError(
                "main/pyproject.toml: [project] dependencies must be a list of strings",
                file="main/pyproject.toml",
                field="project.dependencies",
            )
        return list(deps), toml
    return [], None


# ---- mallard.yaml ------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_config(path: Path) -> ProjectConfig:
    """Parse and check a mallard.yaml."""
    if not path.is_file():
        raise ProjectError(
            f"no {CONFIG_FILE} in {path.parent}: a model project needs mallard.yaml next to main/ and tests/ "
            "(`mallard models init DIR` creates one)",
            file=CONFIG_FILE,
        )
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        where = f" line {line}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or str(exc)
        context = f" ({exc.context})" if exc.context else ""
        raise ProjectError(f"{CONFIG_FILE}{where}: {problem}{context}", file=CONFIG_FILE, line=line) from exc
    except yaml.YAMLError as exc:
        raise ProjectError(f"{CONFIG_FILE}: {exc}", file=CONFIG_FILE) from exc
    try:
        return _parse_config({} if data is None else data)
    except ProjectError as exc:
        line = _key_lines(text).get(exc.field or "")
        if line is None:
            raise
        message = str(exc).replace(f"{CONFIG_FILE}:", f"{CONFIG_FILE} line {line}:", 1)
        raise ProjectError(message, file=CONFIG_FILE, field=exc.field, line=line) from None


def _parse_config(data: Any) -> ProjectConfig:
    model = _section(data, "")
    model_section = _section(model.get("model"), "model")
    build = _section(model.get("build"), "build")
    model_class = _optional_str(model_section, "class", "model")
    if model_class is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", model_class):
        raise _config_error("model.class", f"must look like main.module:ClassName, not {model_class!r}")
    resources = _section(build.get("resources"), "build.resources")
    _check_resources(resources)
    return ProjectConfig(
        model_class=model_class,
        model_name=_optional_str(model_section, "name", "model"),
        build=BuildConfig(
            python_requirements=_str_list(build, "python_requirements"),
            env=_scalars(build, "env", key_pattern=_ENV_NAME),
            params=_scalars(build, "params"),
            tags=_str_list(build, "tags"),
            resources=dict(resources),
        ),
    )


def _key_lines(text: str) -> dict[str, int]:
    """The line of every mapping key, by dotted path (`build.params.C`), for error messages."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                path = f"{prefix}.{key.value}" if prefix else str(key.value)
                lines.setdefault(path, key.start_mark.line + 1)
                walk(value, path)

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, "")
    return lines


def _config_error(field_path: str, problem: str) -> ProjectError:
    return ProjectError(f"{CONFIG_FILE}: {field_path} {problem}", file=CONFIG_FILE, field=field_path)


def _section(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        what = path or "the top level"
        raise ProjectError(
            f"{CONFIG_FILE}: {what} must be a mapping (key: value), not {_kind(value)}", file=CONFIG_FILE, field=path
        )
    allowed = _KEYS[path]
    for key in value:
        if key not in allowed:
            full = f"{path}.{key}" if path else str(key)
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ProjectError(
                f"{CONFIG_FILE}: unknown key {full!r}{hint}; allowed in {path or 'the top level'}: "
                f"{', '.join(sorted(allowed))}",
                file=CONFIG_FILE,
                field=full,
            )
    return value


def _optional_str(section: dict[str, Any], key: str, path: str) -> str | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _config_error(f"{path}.{key}", f"must be a non-empty string, not {_kind(value)}")
    return value.strip()


def _str_list(build: dict[str, Any], key: str) -> list[str]:
    value = build.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _config_error(f"build.{key}", "must be a list of non-empty strings")
    return [v.strip() for v in value]


def _scalars(build: dict[str, Any], key: str, key_pattern: re.Pattern[str] | None = None) -> dict[str, str]:
    value = build.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _config_error(f"build.{key}", f"must be a mapping, not {_kind(value)}")
    out: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or (key_pattern is not None and not key_pattern.match(name)):
            raise _config_error(f"build.{key}", f"has an invalid name {name!r}")
        if isinstance(item, dict | list) or item is None:
            raise _config_error(f"build.{key}.{name}", f"must be a string, number or boolean, not {_kind(item)}")
        out[name] = param_text(item)
    return out


def _check_resources(resources: dict[str, Any]) -> None:
    cpus = resources.get("cpus")
    if cpus is not None and (isinstance(cpus, bool) or not isinstance(cpus, int | float) or cpus <= 0):
        raise _config_error("build.resources.cpus", f"must be a positive number, not {cpus!r}")
    memory = resources.get("memory")
    if memory is not None and (isinstance(memory, bool) or not _MEMORY.match(str(memory))):
        raise _config_error("build.resources.memory", f"must be a size such as 512Mi or 2Gi, not {memory!r}")


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "empty"}.get(type(value), type(value).__name__)
