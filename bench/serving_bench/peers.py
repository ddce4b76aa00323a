"""Starting the peers: the bare FastAPI endpoint and `mlflow models serve`, each its own process
pinned to the servers' core, each answering the same trained artifact."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.fleet.processes import Child, Children, child_env, free_port
from bench.serving_bench import mlflow_peer
from bench.serving_bench.measure import SERVER_CPU, Target, pinned
from bench.serving_bench.project import OUTPUT, arrow_ipc, json_records, mlflow_records, probabilities, rows
from bench.serving_bench.report import REPLICA

JSON = {"Content-Type": "application/json"}
ARROW = {"Content-Type": "application/vnd.apache.arrow.stream"}
SERVER_ENV = {"OMP_NUM_THREADS": "1"}  # every server: one core, so one OpenMP thread for scikit-learn


def wait_ready(url: str, child: Child, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not child.alive():
            raise RuntimeError(f"{child.name} exited before it was ready; its log ends with:\n{child.tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} was not ready after {timeout:.0f} s; log: {child.log}")


def bodies(encode: Callable[[list[dict[str, float]]], bytes], sizes: list[int]) -> dict[int, bytes]:
    """One request body per payload size (always one for 1 row: the same-model probe sends it)."""
    return {n: encode(rows(n)) for n in sorted({1, *sizes})}


def json_probe(url: str, body: bytes) -> Callable[[], list[float]]:
    return lambda: probabilities(httpx.post(url, content=body, headers=JSON, timeout=10).raise_for_status().json())


def start_fastapi(children: Children, model_dir: Path, sizes: list[int]) -> Target:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.serving_bench.fastapi_peer",
        "--model-dir",
        str(model_dir),
        "--port",
        str(port),
    ]
    child = children.start("fastapi-peer", pinned(argv, SERVER_CPU), child_env(SERVER_ENV))
    wait_ready(f"http://127.0.0.1:{port}/ready", child)
    payloads = bodies(json_records, sizes)
    url = f"http://127.0.0.1:{port}/predict"
    return Target(
        "bare FastAPI",
        "http",
        port,
        payloads,
        "/predict",
        headers=JSON,
        server_pid=child.pid,
        probe=json_probe(url, payloads[1]),
    )


def start_mlflow(children: Children, model_dir: Path, work: Path, sizes: list[int]) -> Target:
    exported = mlflow_peer.export_model(model_dir, work / "mlflow-model", work / "logs" / "mlflow-export.log")
    port = free_port()
    env = child_env(SERVER_ENV | {"PATH": f"{mlflow_peer.VENV / 'bin'}:{os.environ.get('PATH', '')}"})
    env.pop("PYTHONPATH", None)
    child = children.start("mlflow-serve", pinned(mlflow_peer.serve_argv(exported, port), SERVER_CPU), env)
    wait_ready(f"http://127.0.0.1:{port}/ping", child)
    payloads = bodies(mlflow_records, sizes)
    url = f"http://127.0.0.1:{port}/invocations"
    return Target(
        "MLflow serve",
        "http",
        port,
        payloads,
        "/invocations",
        headers=JSON,
        server_pid=child.pid,
        probe=json_probe(url, payloads[1]),
    )


def arrow_probe(url: str, body: bytes) -> Callable[[], list[float]]:
    def probe() -> list[float]:
        import pyarrow as pa

        answer = httpx.post(url, content=body, headers=ARROW, timeout=10).raise_for_status()
        table = pa.ipc.open_stream(pa.py_buffer(answer.content)).read_all()
        return [float(v) for v in table.column(OUTPUT).to_pylist()]

    return probe


def start_replica(children: Children, model_dir: Path, sizes: list[int]) -> Target:
    """Our model server alone (`python -m mallard.serving.replica`, Arrow in and out, micro-batching),
    without the gateway in front: where the gateway's share of the time shows."""
    port = free_port()
    argv = [sys.executable, "-m", "mallard.serving.replica", "--model-dir", str(model_dir), "--port", str(port)]
    child = children.start("replica-alone", pinned(argv, SERVER_CPU), child_env(SERVER_ENV))
    wait_ready(f"http://127.0.0.1:{port}/ready", child)
    payloads = bodies(arrow_ipc, sizes)
    return Target(
        REPLICA,
        "http",
        port,
        payloads,
        "/predict",
        headers=ARROW,
        server_pid=child.pid,
        probe=arrow_probe(f"http://127.0.0.1:{port}/predict", payloads[1]),
    )
