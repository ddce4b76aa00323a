"""`mallard models init DIR`: a working example model project to start from.

The example trains a scikit-learn logistic regression on a synthetic churn data set generated from
a fixed seed (no data, no network), logs params and an accuracy metric, declares a schema, and
ships tests that the build runs against the trained model.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

TEMPLATE = "template"
_RENAMES = {"mallardignore": ".mallardignore"}  # dotfiles are stored without the dot so packaging keeps them
_SUBSTITUTED = frozenset({"mallard.yaml", "README.md"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class ScaffoldError(ValueError):
    """The example project cannot be written where asked."""


def init_project(directory: str | os.PathLike[str], *, name: str = "example-model", force: bool = False) -> list[Path]:
    """Write the example project into `directory` and return the files written.

    Refuses a directory that exists and is not empty unless `force`, in which case the example's
    files overwrite same-named files and everything else is left alone.
    """
    if not _NAME.match(name):
        raise ScaffoldError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' (at most 63, starting with a "
            "letter or digit)"
        )
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ScaffoldError(f"{target} is not empty; choose an empty or new directory, or pass force=True (--force)")
    written: list[Path] = []
    for rel, source in sorted(_template_files(resources.files("mallard.scaffold").joinpath(TEMPLATE), "")):
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        text = source.read_text(encoding="utf-8")
        if rel in _SUBSTITUTED:
            text = text.replace("{{name}}", name)
        out.write_text(text, encoding="utf-8")
        written.append(out)
    return written


def _template_files(node: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    files = []
    for child in node.iterdir():
        if child.name == "__pycache__" or child.name.endswith(".pyc"):
            continue
        rel = f"{prefix}{_RENAMES.get(child.name, child.name)}"
        if child.is_dir():
            files += _template_files(child, rel + "/")
        else:
            files.append((rel, child))
    return files
