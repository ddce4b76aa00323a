"""The benchmark's child processes (gateway, echo peer, simulated-agent swarms) and /proc readings."""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def rss_kb(pid: int) -> int:
    """Resident set size from /proc/<pid>/status (VmRSS), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"process {pid} has exited (no VmRSS); see its log in the work directory")


def _stat_cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of `pid` so far."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time of each thread of `pid` (a Python process's event loop is one thread: it saturates first)."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            threads[int(task.name)] = _stat_cpu_seconds(task / "stat")
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return threads


def busiest_thread_share(before: dict[int, float], after: dict[int, float], seconds: float) -> float:
    """The largest fraction of `seconds` any one thread spent on a CPU between two readings."""
    return max((after[t] - before.get(t, 0.0) for t in after), default=0.0) / seconds


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark dies, even by SIGKILL (Linux)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Child:
    """A process this benchmark started; `stop()` is safe to call twice."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


@dataclass
class Children:
    """Every process started, so that an error or Ctrl-C never leaves one behind."""

    logs: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str], *, pipe: bool = False) -> Child:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as handle:
            popen = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO_ROOT,
                stderr=handle,
                stdout=subprocess.PIPE if pipe else handle,
                stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # the benchmark starts no threads, so preexec_fn is safe
            )
        child = Child(name, popen, log)
        self.started.append(child)
        return child

    def start_server(self, name: str, argv: list[str], env: dict[str, str], ports: list[int]) -> Child:
        child = self.start(name, argv, env)
        deadline = time.monotonic() + 60
        while not all(port_open(p) for p in ports):
            if not child.alive() or time.monotonic() > deadline:
                child.stop()
                raise RuntimeError(f"{name} did not start listening on {ports}; its log ends with:\n{child.tail()}")
            time.sleep(0.05)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.started):
            child.stop()
        self.started.clear()


class Swarms:
    """The simulated-agent processes for one measurement, spoken to over their stdin/stdout."""

    def __init__(self, children: Children, processes: list[Child]) -> None:
        self.children = children
        self.processes = processes

    @classmethod
    def start(
        cls,
        children: Children,
        *,
        name: str,
        mode: str,
        target: str,
        ca: Path,
        fleet: Path,
        agents: int,
        procs: int,
        heartbeat_ms: int,
    ) -> Swarms:
        started = []
        share, extra = divmod(agents, procs)
        first = 0
        for index in range(procs):
            count = share + (1 if index < extra else 0)
            argv = [
                sys.executable,
                "-m",
                "bench.fleet.swarm",
                "--target",
                target,
                "--ca",
                str(ca),
                "--fleet",
                str(fleet),
                "--first",
                str(first),
                "--count",
                str(count),
                "--mode",
                mode,
                "--heartbeat-ms",
                str(heartbeat_ms),
            ]
            started.append(children.start(f"{name}-swarm{index}", argv, child_env({}), pipe=True))
            first += count
        return cls(children, started)

    def ask(self, op: str, **fields: Any) -> list[dict[str, Any]]:
        """Send one request to every swarm process (they work in parallel) and collect the replies."""
        line = (json.dumps({"op": op, **fields}) + "\n").encode()
        for child in self.processes:
            stdin: IO[bytes] | None = child.popen.stdin
            assert stdin is not None
            stdin.write(line)
            stdin.flush()
        replies = []
        for child in self.processes:
            stdout: IO[bytes] | None = child.popen.stdout
            assert stdout is not None
            reply = stdout.readline()
            if not reply:
                raise RuntimeError(f"{child.name} exited during {op!r}; its log ends with:\n{child.tail()}")
            replies.append(json.loads(reply))
        return replies

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(c.pid) for c in self.processes)

    def thread_cpu_seconds(self) -> dict[int, float]:
        return {tid: s for c in self.processes for tid, s in thread_cpu_seconds(c.pid).items()}

    def stop(self) -> None:
        for child in self.processes:
            stdin = child.popen.stdin
            if stdin is not None and child.alive():
                try:
                    stdin.write(b'{"op": "quit"}\n')
                    stdin.close()
                except (BrokenPipeError, ValueError):
                    pass
        for child in self.processes:
            try:
                child.popen.wait(20)
            except subprocess.TimeoutExpired:
                child.stop()
