"""Start, find and stop the stack's background processes without losing track of them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ManagedProcess:
    name: str
    pid: int
    marker: str  # a string that must appear in /proc/<pid>/cmdline (guards against pid reuse)
    log: str


def is_alive(proc: ManagedProcess) -> bool:
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        if ") Z" in stat or ") X" in stat:  # zombie: exited, not yet reaped
            return False
    except OSError:
        return False
    return proc.marker in cmdline


def spawn(name: str, argv: list[str], *, env: dict[str, str], log_dir: Path, marker: str) -> ManagedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # survives the CLI exiting (`--detach`) and Ctrl-C in the shell
        )
    proc = ManagedProcess(name=name, pid=popen.pid, marker=marker, log=str(log_path))
    # Until the child calls exec, /proc/<pid>/cmdline still shows our own command line.
    deadline = time.monotonic() + 10
    while not is_alive(proc) and popen.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def stop(proc: ManagedProcess, *, timeout: float = 15.0) -> bool:
    """SIGTERM, wait, then SIGKILL. Returns True if the process had to be killed."""
    if not is_alive(proc):
        return False
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(proc):
            _reap(proc.pid)
            return False
        _reap(proc.pid)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    _reap(proc.pid)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def save(path: Path, procs: list[ManagedProcess]) -> None:
    path.write_text(json.dumps([asdict(p) for p in procs], indent=2))


def load(path: Path) -> list[ManagedProcess]:
    if not path.exists():
        return []
    try:
        return [ManagedProcess(**item) for item in json.loads(path.read_text())]
    except (ValueError, TypeError):
        return []


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def pick_port(preferred: int, taken: set[int]) -> int:
    if preferred not in taken and port_free(preferred):
        return preferred
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        # the gateway needs port+1 free for enrollment by convention; keep ports apart
        if port not in taken and port + 1 not in taken:
            return port


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False
