"""Small model projects written on the fly, and the runtime entry points run as builders run them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]

TINY_MODEL = """
import pandas as pd

import mallard


class TinyModel(mallard.Model):
    def build(self) -> None:
        self.offset = float(self.params.get("offset", "1.0"))
        mallard.log_metric("offset_squared", self.offset**2)

    def schema(self) -> mallard.ModelSchema:
        return mallard.ModelSchema(inputs=[mallard.Field("x", "float")], outputs=[mallard.Field("y", "float")])

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"y": df["x"] + self.offset})
"""


def write_project(
    root: Path,
    model: str = TINY_MODEL,
    *,
    config: str = "model:\n  class: main.model:TinyModel\n",
    files: dict[str, str] | None = None,
) -> Path:
    """A project with main/model.py, mallard.yaml, an empty tests/ and any extra `files`."""
    (root / "main").mkdir(parents=True, exist_ok=True)
    (root / "tests").mkdir(exist_ok=True)
    (root / "main" / "model.py").write_text(textwrap.dedent(model).lstrip())
    (root / "main" / "requirements.txt").write_text("pandas\n")
    (root / "mallard.yaml").write_text(textwrap.dedent(config))
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text).lstrip())
    return root


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


def runtime(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m mallard.runtime ARGS` in `cwd`, as a builder runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mallard.runtime", *args],
        cwd=cwd,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


@contextmanager
def isolated_imports() -> Iterator[None]:
    """Undo the `sys.path` entries and modules a test imported from a model project."""
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            if name == "main" or name.startswith("main.") or name == "model":
                del sys.modules[name]
