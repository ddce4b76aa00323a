"""One measured operation per child process: its JSON answer, wall time and peak memory (ru_maxrss
from wait4, i.e. that child's own peak), pinned to one CPU so a server measured alongside keeps
the other."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet.processes import Child, Children, child_env

RESULT = "RESULT "  # the drivers print their answer on one line after this prefix (their log is shared)


@dataclass
class OpResult:
    """What a driver printed, plus what the parent measured around it."""

    answer: dict[str, Any]
    wall: float
    maxrss_kib: int
    load: float  # 1-minute load average when the operation started: other work competing for the CPUs


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """`argv` run on `cpu` only (with every thread and process it starts), when there is one."""
    if cpu is None or cpu not in os.sched_getaffinity(0):
        return argv
    if not shutil.which("taskset"):
        raise RuntimeError("pinning needs `taskset` (util-linux); install it or run with --no-pin")
    return ["taskset", "-c", str(cpu), *argv]


def cpus() -> tuple[int | None, int | None]:
    """(load generator CPU, server CPU): two different CPUs when the machine has two, else no pinning."""
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else (None, None)


def run_op(
    children: Children,
    name: str,
    argv: list[str],
    config: dict[str, Any],
    work: Path,
    *,
    cpu: int | None = None,
    timeout: float = 1800.0,
) -> OpResult:
    """Run `argv + [config file]` to completion; raise with its log's tail if it fails."""
    config_path = work / f"{name}.json"
    config_path.write_text(json.dumps(config))
    load = os.getloadavg()[0]
    started = time.perf_counter()
    child = children.start(name, pinned([*argv, str(config_path)], cpu), child_env({}))
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"{name} did not finish within {timeout:.0f} s; log: {child.log}")
        time.sleep(0.01)
    wall = time.perf_counter() - started
    child.popen.returncode = os.waitstatus_to_exitcode(status)
    _forget(children, child)
    if child.popen.returncode != 0:
        raise RuntimeError(f"{name} failed (exit {child.popen.returncode}); its log ends with:\n{child.tail()}")
    lines = [ln for ln in child.log.read_text(errors="replace").splitlines() if ln.startswith(RESULT)]
    if not lines:
        raise RuntimeError(f"{name} printed no result; its log ends with:\n{child.tail()}")
    return OpResult(json.loads(lines[-1][len(RESULT) :]), wall, usage.ru_maxrss, load)


def _forget(children: Children, child: Child) -> None:
    if child in children.started:
        children.started.remove(child)
