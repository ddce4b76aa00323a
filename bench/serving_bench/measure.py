"""One measured cell: a load-generator process against one target, and the target's CPU.

Servers run on `SERVER_CPU`, the load generator on `CLIENT_CPU` (Linux CPU affinity, inherited by
every process a server starts: the agent's replicas too). The server's CPU time is read from
/proc for its whole process tree during the cell, so "server CPU per request" counts the agent
and its replicas together.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleet.processes import CLOCK_TICKS, REPO_ROOT, child_env

SERVER_CPU = 0
CLIENT_CPU = 1


def pinned(argv: list[str], cpu: int) -> list[str]:
    """`argv` run with its CPU affinity (and every descendant's) set to `cpu`."""
    if shutil.which("taskset"):
        return ["taskset", "-c", str(cpu), *argv]
    pin = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); os.execvp(sys.argv[2], sys.argv[2:])"
    return [sys.executable, "-c", pin, str(cpu), *argv]


def cpus_available() -> bool:
    return len(os.sched_getaffinity(0)) >= 2 and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(p) for p in text)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(_children(current))
    return out


def tree_cpu_seconds(pid: int) -> dict[int, float]:
    readings = {}
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        readings[p] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return readings


@dataclass
class Target:
    """Something the load generator can call: an HTTP route or a gRPC method, per payload size."""

    name: str
    kind: str  # "http" or "grpc"
    port: int
    bodies: dict[int, bytes]  # rows per request -> request body (HTTP) or serialized message (gRPC)
    path: str = ""
    method: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    server_pid: int | None = None
    probe: Callable[[], list[float]] | None = None  # the answer's probabilities for `bodies[1]`


@dataclass
class Durations:
    warmup: float
    duration: float


def run_cell(target: Target, rows: int, concurrency: int, durations: Durations, log: Path) -> dict[str, Any]:
    spec = {
        "kind": target.kind,
        "host": "127.0.0.1",
        "port": target.port,
        "path": target.path,
        "method": target.method,
        "headers": target.headers,
        "body_b64": base64.b64encode(target.bodies[rows]).decode(),
        "concurrency": concurrency,
        "warmup": durations.warmup,
        "duration": durations.duration,
        "cpu": CLIENT_CPU if cpus_available() else None,
    }
    before = tree_cpu_seconds(target.server_pid) if target.server_pid else {}
    began = time.monotonic()
    with log.open("ab") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "bench.serving_bench.loadgen", json.dumps(spec)],
            env=child_env({}),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=handle,
            timeout=durations.warmup + durations.duration + 120,
            check=True,
        )
    wall = time.monotonic() - began
    result: dict[str, Any] = json.loads(done.stdout)
    if target.server_pid:
        after = tree_cpu_seconds(target.server_pid)
        used = sum(after[p] - before.get(p, 0.0) for p in after)
        # The server's CPU over the load generator's whole life (warm-up included), per answer.
        result["server_cpu"] = round(used / wall, 3)
        result["server_cpu_ms_per_req"] = round(1000 * used / max(result["completed"], 1), 3)
    result.update(target=target.name, rows=rows, concurrency=concurrency)
    return result
