"""`python -m control_plane.api` migrates an empty database and serves the API, as `mallard dev up` uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.servers import free_port, repo_root, wait_for


def test_module_entry_point_migrates_and_serves(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
    env |= {"MALLARD_CP_HOME": str(tmp_path / "cp"), "PYTHONPATH": str(repo_root())}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "control_plane.api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_for(lambda: httpx.get(f"{base}/health", timeout=1).status_code == 200, timeout=30, what="the API")
        created = httpx.post(f"{base}/bootstrap", json={"tenant": "local", "email": "admin@localhost"})
        assert created.status_code == 201, created.text
        me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {created.json()['api_key']['key']}"})
        assert me.json()["tenant"]["name"] == "local"
        assert (tmp_path / "cp" / "control-plane.db").exists()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode in (0, -15), output.decode(errors="replace")
