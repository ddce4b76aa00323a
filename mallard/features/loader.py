"""`load_definitions(dir)`: import the Python files of a feature repository and collect its definitions."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import uuid
from pathlib import Path

from mallard.features.definitions import Definition, Entity, FeatureSet, StreamFeatureSet
from mallard.features.errors import FeatureDefinitionError


def load_definitions(directory: str | Path) -> list[Definition]:
    """Every Entity, FeatureSet and StreamFeatureSet defined at module level in `directory/*.py`.

    Files starting with '_' are skipped. Relative source paths are resolved against
    `directory`. A file that fails to import raises FeatureDefinitionError naming the file.
    Definitions come back in file order, entities first, each object once.
    """
    root = Path(directory).resolve()
    if not root.is_dir():
        raise FeatureDefinitionError(f"{root} is not a directory", field="directory")
    found: list[Definition] = []
    seen: set[int] = set()
    for path in sorted(root.glob("*.py")):
        if path.name.startswith("_"):
            continue
        for value in vars(_import(path)).values():
            if isinstance(value, Entity | FeatureSet | StreamFeatureSet) and id(value) not in seen:
                seen.add(id(value))
                found.append(value)
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


def _import(path: Path) -> object:
    name = f"_mallard_features_{path.stem}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FeatureDefinitionError(f"cannot import {path}", field=path.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except FeatureDefinitionError as exc:
        raise FeatureDefinitionError(f"{path.name}: {exc.message}", definition=exc.definition, field=exc.field) from exc
    except Exception as exc:
        raise FeatureDefinitionError(
            f"{path.name} failed to import: {type(exc).__name__}: {exc}", field=path.name
        ) from exc
    finally:
        sys.modules.pop(name, None)
    return module
