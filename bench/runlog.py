"""Helpers both benchmarks use: timestamped progress on stderr, load average, SIGTERM as Ctrl-C."""

from __future__ import annotations

import os
import sys
import time
from types import FrameType


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    """Installed for SIGTERM so a terminated run cleans up exactly as an interrupted one does."""
    raise KeyboardInterrupt
