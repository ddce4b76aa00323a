"""Running one build step: a subprocess in its own process group, its output in the build log,
cancellable from another thread, with the last lines kept for the error summary."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from data_plane_agent.builds.log import BuildLog

TAIL_LINES = 25


class BuildCancelled(Exception):
    """The build was cancelled; whatever ran has been stopped."""


class StepFailed(Exception):
    """A step failed; the message names the cause (it becomes the error summary)."""


class CancelToken:
    """Set once by `cancel()`; the running step registers how to stop itself."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            hooks = list(self._hooks)
        for hook in hooks:
            with contextlib.suppress(Exception):
                hook()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise BuildCancelled()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    @contextlib.contextmanager
    def on_cancel(self, hook: Callable[[], None]) -> Iterator[None]:
        """Run `hook` if the build is cancelled while the block runs (at once if it already was)."""
        with self._lock:
            self._hooks.append(hook)
            already = self._event.is_set()
        if already:
            hook()
        try:
            yield
        finally:
            with self._lock:
                self._hooks.remove(hook)


@dataclass(frozen=True)
class StepOutput:
    returncode: int
    stdout_tail: str
    stderr_tail: str


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_step(
    argv: Sequence[str | Path],
    *,
    title: str,
    cwd: Path,
    env: dict[str, str],
    log: BuildLog,
    cancel: CancelToken,
    deadline: float,
    summary_from: str = "stderr",
    check: bool = True,
    on_start: Callable[[int | None], None] | None = None,
) -> StepOutput:
    """Run `argv` to completion. Raises BuildCancelled, or StepFailed on a non-zero exit (when
    `check`) or on the build deadline, with the last lines of `summary_from` (stderr|stdout|both)."""
    cancel.raise_if_cancelled()
    log.line(f"$ {' '.join(str(a) for a in argv)}")
    proc = subprocess.Popen(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: cancel kills pip's or pytest's children too
    )
    tails: dict[str, deque[str]] = {"stdout": deque(maxlen=TAIL_LINES), "stderr": deque(maxlen=TAIL_LINES)}
    timed_out = False
    if on_start:
        on_start(proc.pid)
    try:
        with cancel.on_cancel(lambda: kill_group(proc.pid)):
            timed_out = _pump(proc, log, tails, deadline)
    finally:
        kill_group(proc.pid)  # stragglers that outlived the step
        proc.wait()
        if on_start:
            on_start(None)
    if cancel.cancelled:
        log.line(f"{title}: stopped (build cancelled)")
        raise BuildCancelled()
    output = StepOutput(proc.returncode, "\n".join(tails["stdout"]), "\n".join(tails["stderr"]))
    if timed_out:
        raise StepFailed(f"{title} did not finish before the build deadline; it was stopped")
    if check and proc.returncode != 0:
        detail = {"stdout": output.stdout_tail, "stderr": output.stderr_tail}.get(
            summary_from, (output.stdout_tail + "\n" + output.stderr_tail).strip()
        )
        raise StepFailed(f"{title} failed (exit code {proc.returncode}):\n{detail.strip()}")
    return output


def _pump(proc: subprocess.Popen[bytes], log: BuildLog, tails: dict[str, deque[str]], deadline: float) -> bool:
    """Copy output until both pipes close; True if the deadline stopped the process."""
    selector = selectors.DefaultSelector()
    partial: dict[str, bytes] = {}
    assert proc.stdout is not None and proc.stderr is not None
    for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        os.set_blocking(pipe.fileno(), False)
        selector.register(pipe, selectors.EVENT_READ, name)
        partial[name] = b""
    timed_out = False
    exited_at: float | None = None
    while selector.get_map():
        if time.monotonic() > deadline and not timed_out:
            timed_out = True
            kill_group(proc.pid)
        if exited_at is None and proc.poll() is not None:
            exited_at = time.monotonic()
        if exited_at is not None and time.monotonic() - exited_at > 5:
            break  # a grandchild holds the pipe open; the caller kills the group
        for key, _ in selector.select(timeout=0.2):
            name = str(key.data)
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(key.fileobj)
                chunk = b"\n" if partial[name] else b""
            data = partial[name] + chunk
            *lines, partial[name] = data.split(b"\n")
            for raw in lines:
                text = raw.decode("utf-8", "replace").rstrip("\r")
                tails[name].append(text)
                log.write(text + "\n")
    selector.close()
    return timed_out


_PYTEST_COUNTS = re.compile(r"\b\d+ (failed|errors?)\b")


def pytest_failures(lines: list[str]) -> str | None:
    """From the end of a pytest run: its FAILED/ERROR lines and the counts line (None if absent)."""
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    if not failed:
        return None
    counts = next((line.strip("= ") for line in reversed(lines) if _PYTEST_COUNTS.search(line)), "")
    return "\n".join([*failed, counts] if counts else failed)


# pytest cuts its summary lines to the terminal width; give it room so the cause survives.
PYTEST_COLUMNS = "300"


def child_env(base: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment a build step sees: a short allow-list from the agent's environment (the
    agent's own secrets, e.g. store credentials, never reach model code), plus `extra`."""
    env = {k: v for k, v in base.items() if k in _PASS or k.startswith(_PASS_PREFIXES)}
    env.setdefault("PATH", os.defpath)
    env.update(extra)
    return env


_PASS = {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"}
_PASS_PREFIXES = ("PIP_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "UV_")
