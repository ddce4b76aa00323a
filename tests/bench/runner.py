"""Runs a benchmark script the way a user does: `python bench/<script>` from the repository root,
without the caller's MALLARD_* settings."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.servers import repo_root


def run_bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python bench/<script> ARGS`; the exit code and output are the caller's to check."""
    repo = repo_root()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")} | {"PYTHONPATH": str(repo)}
    return subprocess.run(
        [sys.executable, str(repo / "bench" / script), *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
