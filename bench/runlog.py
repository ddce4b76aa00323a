"""Helpers the benchmarks share: timestamped progress on stderr, load average, SIGTERM as Ctrl-C,
and the main loop around a run (work directory, child processes, cleanup, report)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench.fleet.processes import Children


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    """Installed for SIGTERM so a terminated run cleans up exactly as an interrupted one does."""
    raise KeyboardInterrupt


def run_main(
    args: argparse.Namespace,
    prefix: str,
    run: Callable[[Path, Children], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    *,
    logs: str | None = None,
    finish: Callable[[dict[str, Any]], None] | None = None,
    cleanup: Callable[[], None] | None = None,
) -> int:
    """Run one benchmark in a fresh work directory and print its report (JSON with `--json`).

    `run` measures; `finish` completes the result after the load average is recorded; `cleanup`
    runs after the child processes are stopped. Ctrl-C or SIGTERM stops everything and returns 130;
    a failure keeps the work directory (its logs) and re-raises; `--keep` keeps it always.
    """
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    if logs is not None:
        (work / logs).mkdir()
    children = Children(work / logs if logs is not None else work)
    keep = args.keep
    try:
        started = loadavg()
        data = run(work, children)
        data["setup"].update(loadavg_start=started, loadavg_end=loadavg())
        if finish is not None:
            finish(data)
    except KeyboardInterrupt:
        log("interrupted; stopping the processes this run started")
        return 130
    except Exception:
        keep = True
        log(f"the run failed; logs are kept in {work}")
        raise
    finally:
        children.stop_all()
        if cleanup is not None:
            cleanup()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        elif work.exists():
            log(f"work directory kept: {work}")
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 0
