"""Timed runs: `mallard models build --follow --json` as a user runs it, split along the build's
own timeline, and the peer (the same steps straight on the host, no platform)."""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
# Phases as the agent reports them; "package" includes the Docker builder's copy out of the image.
PHASES = ("fetch_context", "resolve_dependencies", "train", "test", "package", "publish")


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_command(
    argv: list[str], *, env: dict[str, str], cwd: Path, log: Path, timeout: float = 1800
) -> tuple[float, str]:
    """Run to completion; (wall seconds, stdout). stderr goes to `log`. Fails on a non-zero exit.
    The child is killed if the benchmark is interrupted (and gets SIGTERM if it dies)."""
    with open(log, "ab") as handle:
        handle.write(f"\n$ {' '.join(argv)}\n".encode())
        handle.flush()
        started = time.monotonic()
        popen = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=handle,
            preexec_fn=_die_with_parent,  # the benchmark starts no threads, so preexec_fn is safe
        )
        try:
            stdout, _ = popen.communicate(timeout=timeout)
        except BaseException:
            popen.kill()
            popen.wait(10)
            raise
        seconds = time.monotonic() - started
    if popen.returncode != 0:
        tail = log.read_text(errors="replace")[-2500:]
        raise RuntimeError(f"{argv[0]} ... {argv[-1]} exited {popen.returncode}; {log} ends with:\n{tail}\n{stdout!r}")
    return seconds, stdout.decode(errors="replace")


def _at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@dataclass
class BuildTiming:
    """One `mallard models build --follow` run and where its wall time went."""

    builder: str
    kind: str  # cold | warm | warm, new param
    build_id: str
    wall: float  # the CLI process, start to exit
    agent: float  # first phase started -> last phase ended, on the agent's clock
    split: dict[str, float]  # client / dispatch / report / follow (see bench/README.md)
    phases: dict[str, float]
    duration_seconds: float  # as the control plane records it
    environment: str = ""  # "created" or "reused", from the build log's first lines
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def overhead(self) -> float:
        return self.wall - self.agent


def timeline(record: dict[str, Any], started: float, ended: float) -> tuple[float, dict[str, float], dict[str, float]]:
    """(agent seconds, overhead split, seconds per phase) from the final build record."""
    phases = record["phases"]
    first = min(_at(p["at"]) for p in phases)
    last = max(_at(p["at"]) for p in phases)
    created, finished = _at(record["created_at"]), _at(record["finished_at"])
    split = {
        "client": created - started,  # CLI start-up, validate, pack, token, upload, create the build
        "dispatch": first - created,  # command row -> gateway -> agent -> first phase event
        "report": finished - last,  # log upload, finished event -> outbox -> gateway -> database
        "follow": ended - finished,  # the CLI noticing SUCCEEDED (it polls) and exiting
    }
    per_phase: dict[str, float] = {}
    starts = {p["phase"]: _at(p["at"]) for p in phases if p["state"] == "started"}
    for p in phases:
        if p["state"] != "started" and p["phase"] in starts:
            per_phase[p["phase"]] = _at(p["at"]) - starts[p["phase"]]
    return last - first, split, per_phase


def cli_build(
    *, builder: str, kind: str, project: Path, model: str, env: dict[str, str], logs: Path, params: dict[str, str]
) -> BuildTiming:
    argv = [sys.executable, "-m", "mallard", "models", "build", str(project), "--model", model]
    argv += ["--builder", builder, "--follow", "--json"]
    for key, value in params.items():
        argv += ["--param", f"{key}={value}"]
    started = time.time()
    _wall, out = run_command(argv, env=env, cwd=project.parent, log=logs / f"cli-{builder}.log")
    ended = time.time()
    record = json.loads(out)
    if record["status"] != "SUCCEEDED":
        raise RuntimeError(f"build {record['id']} ended {record['status']}: {record.get('error_summary')}")
    agent, split, phases = timeline(record, started, ended)
    return BuildTiming(
        builder=builder,
        kind=kind,
        build_id=record["id"],
        wall=ended - started,
        agent=agent,
        split=split,
        phases=phases,
        duration_seconds=float(record["duration_seconds"]),
        record=record,
    )


def environment_reused(agent_home: Path, build_id: str) -> str:
    """Whether the build made its environment (virtualenv; wheelhouse and dependency image) or
    reused it, from the lines the builders write to the build log in the agent's store."""
    log = agent_home / "store" / "logs" / "builds" / f"{build_id}.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    if "creating environment" in text or "docker build -t mallard-deps:" in text:
        return "created"
    if "reusing the ready environment" in text or "reusing the dependency image" in text:
        return "reused"
    return "?"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---- the peer: the same steps straight on the host ------------------------------------------


def ready_venv(agent_home: Path) -> Path:
    """The virtualenv the local builder made (the only ready one in a fresh agent home)."""
    ready = sorted((agent_home / "cache" / "envs").glob("*/.mallard-ready"))
    if not ready:
        raise RuntimeError(f"no ready virtualenv under {agent_home / 'cache' / 'envs'}")
    return ready[0].parent


def peer_local(venv: Path, project: Path, work: Path, logs: Path) -> dict[str, float]:
    """`mallard.runtime train`, `check` and the project's pytest in the prepared virtualenv, as the
    local builder runs them (PYTHONDONTWRITEBYTECODE, cwd the project), without the platform."""
    copy = work / "project"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(project, copy)
    out = work / "out"
    python = str(venv / "bin" / "python")
    base = {"PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": str(venv)}
    env = base | {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "HOME": str(work)}
    log = logs / "peer-local.log"
    train, _ = run_command(
        [python, "-m", "mallard.runtime", "train", "--project", str(copy), "--output", str(out)],
        env=env,
        cwd=copy,
        log=log,
    )
    check, _ = run_command(
        [python, "-m", "mallard.runtime", "check", "--artifact", str(out / "model")], env=env, cwd=copy, log=log
    )
    tests, _ = run_command(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        env=env | {"MALLARD_MODEL_DIR": str(out / "model")},
        cwd=copy,
        log=log,
    )
    return {"train": train, "check": check, "tests": tests, "steps": train + check + tests}
