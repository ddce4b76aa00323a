"""Test helpers for builds: contexts in a store, a scripted builder, waiting on outcomes."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from data_plane_agent.builds import Builder, BuildJob, BuildManager
from data_plane_agent.builds.steps import run_step
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import ObjectStore, context_key
from shared import builds as contract

TENANT = "ten_test"

MODEL_YAML = "model:\n  name: demo\nbuild:\n  params: {alpha: '1'}\n"


def make_context(store: ObjectStore, files: dict[str, str | bytes]) -> str:
    """Pack `files` into a tar.gz, put it in the store under its digest, return the digest."""
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name in sorted(files):
            value = files[name]
            data = value.encode() if isinstance(value, str) else value
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    body = raw.getvalue()
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    store.put_stream(context_key(digest), io.BytesIO(body))
    return digest


def simple_project() -> dict[str, str | bytes]:
    return {
        "mallard.yaml": MODEL_YAML,
        "main/model.py": "VALUE = 1\n",
        "main/requirements.txt": "",
        "tests/test_model.py": "def test_ok():\n    assert True\n",
    }


TRAIN_OK = """
import json, os, pathlib, sys
out = pathlib.Path(sys.argv[1])
(out / "model").mkdir(parents=True)
(out / "model" / "manifest.json").write_text(json.dumps({"format": "mallard.model", "format_version": 1}))
(out / "model" / "weights.bin").write_bytes(b"w" * 100)
(out / "result.json").write_text(json.dumps({"params": {"alpha": "2"}, "metrics": {"accuracy": 0.9}}))
print("trained")
"""


class ScriptedBuilder(Builder):
    """Runs real subprocesses (`python -c SCRIPT`) for each middle phase."""

    name = "local"

    def __init__(self, scripts: dict[str, str] | None = None) -> None:
        self.scripts = {"resolve_dependencies": "print('resolved')", "train": TRAIN_OK, "test": "print('tested')"}
        self.scripts.update(scripts or {})
        self.recovered: list[str] = []

    def _run(self, job: BuildJob, phase: str) -> None:
        run_step(
            [sys.executable, "-c", self.scripts[phase], str(job.out)],
            title=phase,
            cwd=job.project,
            env=job.step_env(),
            log=job.log,
            cancel=job.cancel,
            deadline=job.deadline,
            on_start=job.on_process,
        )

    def resolve_dependencies(self, job: BuildJob) -> None:
        self._run(job, "resolve_dependencies")

    def train(self, job: BuildJob) -> None:
        self._run(job, "train")

    def test(self, job: BuildJob) -> None:
        self._run(job, "test")

    def collect(self, job: BuildJob) -> None:
        pass

    def recover(self, build_id: str) -> None:
        self.recovered.append(build_id)


def spec(build_id: str, digest: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "build_id": build_id,
        "tenant_id": TENANT,
        "model": "demo",
        "context_digest": digest,
        "builder": "local",
        "params": {"alpha": "2"},
        "tags": [],
    }
    base.update(extra)
    return base


def events(outbox: Outbox, build_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    found = [(e.type, json.loads(e.payload_json)) for e in outbox.unacked(limit=10_000)]
    return [(t, p) for t, p in found if build_id is None or p.get("build_id") == build_id]


def wait_final(manager: BuildManager, build_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = manager.get(build_id)
        # The record turns final a moment before the finished event reaches the outbox; tests
        # read that event next, so wait for both.
        finished = any(t == contract.FINISHED_EVENT for t, _ in events(manager.outbox, build_id))
        if record is not None and record.status in ("SUCCEEDED", "FAILED", "CANCELLED") and finished:
            return record.status
        time.sleep(0.05)
    record = manager.get(build_id)
    raise AssertionError(f"build {build_id} did not finish in {timeout}s: {record and record.view()}")


def wait_phase(manager: BuildManager, build_id: str, phase: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = manager.get(build_id)
        if record is not None and record.phase == phase and record.pid:
            return
        time.sleep(0.02)
    raise AssertionError(f"build {build_id} never ran a process in {phase}: {manager.get(build_id)}")


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def churn_model(build_body: str) -> str:
    """main/model.py for the scaffold's ChurnModel with `build_body` as build()'s body."""
    return (
        "import time\n\nimport mallard\n\n\nclass ChurnModel(mallard.Model):\n"
        "    def build(self):\n"
        f"        {build_body}\n\n"
        "    def schema(self):\n"
        "        return mallard.ModelSchema(inputs=[], outputs=[])\n\n"
        "    def predict(self, df):\n"
        "        return df\n"
    )


SLOW_BUILD_OUTPUT = b"training for a long time"  # what SLOW_BUILD prints once its train step runs
SLOW_BUILD = f"print({SLOW_BUILD_OUTPUT.decode()!r}, flush=True); time.sleep(300)"
