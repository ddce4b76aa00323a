"""The peer: Feast, installed into its own virtualenv by the benchmark and driven by
`feast_driver.py` (one process per operation) and `feast serve` for HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.feature_store.data import ENTITY_KEY, TIMESTAMP, Dataset
from bench.feature_store.procs import OpResult, pinned, run_op
from bench.fleet.processes import Child, Children, child_env, free_port
from bench.runlog import log

FEAST_REQUIREMENT = "feast[duckdb]==0.67.0"
DRIVER = Path(__file__).with_name("feast_driver.py")
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def ensure_feast(cache: Path) -> Path:
    """The Feast virtualenv's python, installing `FEAST_REQUIREMENT` on first use (a minute or two)."""
    venv = cache / "feast-venv"
    python = venv / "bin" / "python"
    stamp = venv / f".installed-{FEAST_REQUIREMENT.replace('[', '_').replace(']', '_')}"
    if stamp.exists():
        return python
    log(f"installing {FEAST_REQUIREMENT} into {venv} (once; later runs reuse it)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    env = dict(os.environ)
    if Path(CA_BUNDLE).exists():
        env.setdefault("PIP_CERT", CA_BUNDLE)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run([str(python), "-m", "pip", "install", "-q", FEAST_REQUIREMENT], check=True, env=env)
    for old in venv.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return python


def _config(dataset: Dataset, repo: Path, offline: str) -> dict[str, Any]:
    spec = dataset.spec
    sets = [
        {"name": spec.set_name(i), "path": str(dataset.source(i)), "features": spec.feature_types(i)}
        for i in range(spec.sets)
    ]
    return {
        "repo": str(repo),
        "offline": offline,
        "sets": sets,
        "entity_key": ENTITY_KEY,
        "timestamp": TIMESTAMP,
        "ttl_days": spec.ttl_days,
        "entity_count": spec.entities,
    }


class Feast:
    """One Feast repository per offline store (`file`, `duckdb`), each with its own SQLite online store.
    Online reads use `online_store`'s repository (the online path does not touch the offline store)."""

    name = "feast"
    http_path = "/get-online-features"

    def __init__(self, python: Path, dataset: Dataset, work: Path, children: Children, cpu: int | None) -> None:
        self.python = python
        self.dataset = dataset
        self.work = work / "feast"
        self.work.mkdir()
        self.children = children
        self.cpu = cpu
        self.online_store = "duckdb"

    def _op(self, op: str, offline: str, **extra: Any) -> OpResult:
        config = _config(self.dataset, self.work / f"repo-{offline}", offline) | extra
        argv = [str(self.python), str(DRIVER), op.split("-")[0]]
        cpu = self.cpu if op.startswith("online") else None  # batch work gets every CPU, as ours does
        return run_op(self.children, f"feast-{op}-{offline}", argv, config, self.work, cpu=cpu)

    def setup(self, offline: str) -> None:
        self._op("setup", offline)

    def historical(self, offline: str) -> tuple[OpResult, Path]:
        out = self.work / f"historical-{offline}.parquet"
        return self._op("historical", offline, entities=str(self.dataset.entities), out=str(out)), out

    def materialize(self, offline: str) -> OpResult:
        spec = self.dataset.spec
        return self._op("materialize", offline, start=spec.start.isoformat(), end=spec.end.isoformat())

    def online(self, batch: int, requests: int, warmup: int, seed: int) -> OpResult:
        store = self.online_store
        return self._op(f"online-{batch}", store, batch=batch, requests=requests, warmup=warmup, seed=seed)

    def serve(self, cpu: int | None) -> tuple[Child, int]:
        """`feast serve` (gunicorn, one uvicorn worker) on 127.0.0.1, pinned to `cpu`."""
        port = free_port()
        feast = self.python.parent / "feast"
        repo = self.work / f"repo-{self.online_store}"
        argv = [str(feast), "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port)]
        argv += ["--no-access-log", "--workers", "1", "--max-requests", "0", "--registry_ttl_sec", "3600"]
        child = self.children.start_server("feast-serve", pinned(argv, cpu), child_env({}), [port])
        return child, port

    def refs(self) -> list[str]:
        spec = self.dataset.spec
        return [f"{spec.set_name(i)}:{f}" for i in range(spec.sets) for f in spec.feature_names(i)]

    def http_headers(self) -> dict[str, str]:
        return {}

    def http_bodies(self, keys: list[list[int]]) -> list[dict[str, Any]]:
        refs = self.refs()
        return [{"features": refs, "entities": {ENTITY_KEY: batch}} for batch in keys]
