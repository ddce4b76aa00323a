"""The SDK runs in build environments that have only its own dependencies installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.mallard.sdk.helpers import subprocess_env, write_project

BLOCK_SERVER_PACKAGES = textwrap.dedent(
    """
    import sys
    import importlib.abc

    BLOCKED = {"httpx", "fastapi", "grpc", "sqlmodel", "sqlalchemy", "celery", "typer", "uvicorn", "cryptography"}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not installed in a build environment")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_SERVER_PACKAGES + textwrap.dedent(code)],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_import_mallard_is_light(tmp_path: Path) -> None:
    result = run_python(
        """
        import mallard
        assert mallard.Model and mallard.ModelSchema and mallard.log_metric
        assert "pandas" not in sys.modules, "import mallard must not import pandas"
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_runtime_trains_and_checks_without_server_packages(tmp_path: Path) -> None:
    project = write_project(tmp_path / "p")
    result = run_python(
        f"""
        from mallard.runtime import main
        assert main(["train", "--project", ".", "--output", {str(tmp_path / "out")!r}]) == 0
        assert main(["check", "--artifact", {str(tmp_path / "out" / "model")!r}]) == 0
        from mallard.testing import load_built_model
        from mallard.packing import pack_context
        from mallard.project import validate_project
        validate_project(".")
        """,
        project,
    )
    assert result.returncode == 0, result.stderr
