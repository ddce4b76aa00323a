"""Ours: Mallard's feature store driven like the peer: `mallard_driver.py` runs each operation in
its own process (the engine the agent runs, in-process), and the agent's data-plane REST API
serves `POST /v1/features/online` for the HTTP figures (`mallard_server.py`)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from bench.feature_store.data import ENTITY_KEY, TIMESTAMP, Dataset
from bench.feature_store.procs import OpResult, pinned, run_op
from bench.fleet.processes import Child, Children, child_env, free_port

DRIVER = Path(__file__).with_name("mallard_driver.py")
SERVER = Path(__file__).with_name("mallard_server.py")
PROJECT = "bench"  # as mallard_driver.py applies the definitions


def mallard_missing() -> str | None:
    """Why ours cannot be measured in this checkout, or None."""
    if importlib.util.find_spec("data_plane_agent.features.engine") is None:
        return "data_plane_agent.features has no FeatureEngine yet"
    return None


def http_missing() -> str | None:
    """Why ours cannot be measured over HTTP in this checkout, or None."""
    if importlib.util.find_spec("data_plane_agent.api.routes_features") is None:
        return "the data-plane REST API has no POST /v1/features/online yet"
    return None


class Mallard:
    """One agent-like home (local object store, SQLite online store) shared by every operation."""

    name = "mallard"
    http_path = "/v1/features/online"

    def __init__(self, dataset: Dataset, work: Path, children: Children, cpu: int | None) -> None:
        self.dataset = dataset
        self.work = work / "mallard"
        self.work.mkdir()
        self.home = self.work / "home"
        self.children = children
        self.cpu = cpu
        self.token = ""

    def _config(self) -> dict[str, Any]:
        spec = self.dataset.spec
        sets = [
            {"name": spec.set_name(i), "path": str(self.dataset.source(i)), "features": spec.feature_types(i)}
            for i in range(spec.sets)
        ]
        return {
            "home": str(self.home),
            "sets": sets,
            "entity_key": ENTITY_KEY,
            "timestamp": TIMESTAMP,
            "ttl_days": spec.ttl_days,
            "entity_count": spec.entities,
        }

    def _op(self, op: str, **extra: Any) -> OpResult:
        argv = [sys.executable, str(DRIVER), op.split("-")[0]]
        cpu = self.cpu if op.startswith("online") else None  # batch work gets every CPU, as Feast's does
        return run_op(self.children, f"mallard-{op}", argv, self._config() | extra, self.work, cpu=cpu)

    def setup(self) -> None:
        self._op("setup")

    def materialize(self) -> OpResult:
        spec = self.dataset.spec
        return self._op("materialize", start=spec.start.isoformat(), end=spec.end.isoformat())

    def historical(self) -> tuple[OpResult, Path]:
        out = self.work / "historical.parquet"
        return self._op("historical", entities=str(self.dataset.entities), out=str(out)), out

    def online(self, batch: int, requests: int, warmup: int, seed: int) -> OpResult:
        return self._op(f"online-{batch}", batch=batch, requests=requests, warmup=warmup, seed=seed)

    def serve(self, cpu: int | None) -> tuple[Child, int]:
        """The data-plane REST app alone under uvicorn on 127.0.0.1, pinned to `cpu`."""
        port = free_port()
        token_file = self.work / "token"
        config = self.work / "server.json"
        config.write_text(json.dumps({"home": str(self.home), "port": port, "token_file": str(token_file)}))
        argv = pinned([sys.executable, str(SERVER), str(config)], cpu)
        child = self.children.start_server("mallard-serve", argv, child_env({}), [port])
        self.token = token_file.read_text()
        return child, port

    def http_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def http_bodies(self, keys: list[list[int]]) -> list[Any]:
        """One request of the benchmark = one POST naming every feature of every set (as Feast's one call)."""
        spec = self.dataset.spec
        refs = [f"{spec.set_name(i)}:{f}" for i in range(spec.sets) for f in spec.feature_names(i)]
        return [{"project": PROJECT, "keys": [{ENTITY_KEY: k} for k in batch], "features": refs} for batch in keys]
