"""`load_definitions(dir)`: import the Python files of a feature repository and collect its definitions."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from mallard.features.definitions import Definition, Entity, FeatureSet, StreamFeatureSet
from mallard.features.errors import FeatureDefinitionError


def load_definitions(directory: str | Path) -> list[Definition]:
    """Every Entity, FeatureSet and StreamFeatureSet defined at module level in `directory/*.py`.

    Files may import each other by name (`from entities import driver`); files starting with '_'
    are only imported that way. Relative source paths are resolved against `directory`. A file
    that fails to import raises FeatureDefinitionError naming the file. Definitions come back
    entities first, then in file order, each once.
    """
    root = Path(directory).resolve()
    if not root.is_dir():
        raise FeatureDefinitionError(f"{root} is not a directory", field="directory")
    found: list[Definition] = []
    seen: set[tuple[str, str, str]] = set()
    files = [p for p in sorted(root.glob("*.py")) if not p.name.startswith("_")]
    before = set(sys.modules)
    sys.path.insert(0, str(root))
    try:
        for path in files:
            for value in vars(_import(path)).values():
                if isinstance(value, Entity | FeatureSet | StreamFeatureSet):
                    identity = (value.kind, value.name, value.fingerprint)
                    if identity not in seen:
                        seen.add(identity)
                        found.append(value)
    finally:
        sys.path.remove(str(root))
        # Forget the repository's modules so a later load (or another repository) starts clean.
        for name in set(sys.modules) - before:
            module_file = getattr(sys.modules[name], "__file__", None) or ""
            if module_file.startswith(str(root)):
                del sys.modules[name]
    if not found:
        raise FeatureDefinitionError(
            f"no Entity, FeatureSet or StreamFeatureSet found in {root}/*.py", field="directory"
        )
    resolved: list[Definition] = []
    for item in found:
        if isinstance(item, FeatureSet):
            item = dataclasses.replace(item, source=item.source.resolved(root))
        resolved.append(item)
    return sorted(resolved, key=lambda d: 0 if isinstance(d, Entity) else 1)


def _import(path: Path) -> ModuleType:
    existing = sys.modules.get(path.stem)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing  # already imported by a sibling file
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise FeatureDefinitionError(f"cannot import {path}", field=path.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except FeatureDefinitionError as exc:
        del sys.modules[path.stem]
        error = FeatureDefinitionError(f"{path.name}: {exc.message}", field=exc.field)
        error.definition = exc.definition
        raise error from exc
    except Exception as exc:
        del sys.modules[path.stem]
        raise FeatureDefinitionError(
            f"{path.name} failed to import: {type(exc).__name__}: {exc}", field=path.name
        ) from exc
    return module
