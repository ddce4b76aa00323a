"""After a crash: stop what a dead agent's build left running, and only that."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

log = logging.getLogger("mallard.agent.builds")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command name: state ppid pgrp ...
            pgrp = int(stat.rsplit(")", 1)[1].split()[2])
        except (OSError, ValueError, IndexError):
            continue
        if pgrp == pgid:
            members.append(int(entry.name))
    return members


def _belongs_to(pid: int, build_id: str) -> bool:
    marker = f"MALLARD_BUILD_ID={build_id}".encode()
    try:
        return marker in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return False


def kill_leftover(pgid: int, build_id: str) -> bool:
    """Kill process group `pgid` if a process in it still carries this build's id in its
    environment (a recycled pid belongs to someone else and is left alone)."""
    members = _group_members(pgid)
    if not any(_belongs_to(pid, build_id) for pid in members):
        return False
    log.warning("killing process group %s left over from build %s", pgid, build_id)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    return True
