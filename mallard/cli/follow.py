"""Following a build: phases from the control plane, log lines from the data plane."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console

from mallard.client import ApiError, ControlPlaneClient
from mallard.dataplane import DataPlaneClient

FINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def follow_build(
    cp: ControlPlaneClient, build_id: str, *, console: Console, show_logs: bool = True, poll: float = 0.25
) -> dict[str, Any]:
    """Print phase changes and new log output until the build finishes; return the final build."""
    build: dict[str, Any] = cp.get(f"/builds/{build_id}")
    dp = DataPlaneClient(cp, build.get("data_plane_url") or None)
    offset = 0
    seen_phases = 0
    status_line = console.status(f"build {build_id}: {build['status'].lower()}")
    status_line.start()
    try:
        while True:
            build = cp.get(f"/builds/{build_id}")
            phases = build.get("phases") or []
            for entry in phases[seen_phases:]:
                mark = {"started": "▶", "succeeded": "✔", "failed": "✘", "cancelled": "■"}.get(entry["state"], "•")
                console.print(f"{mark} {entry['phase']} {entry['state']}", highlight=False)
            seen_phases = len(phases)
            current = phases[-1]["phase"] if phases else "waiting for the agent"
            status_line.update(f"build {build_id}: {build['status'].lower()} ({current})")
            if show_logs:
                try:
                    chunk, offset, _ = dp.logs(build_id, offset)
                except ApiError as exc:
                    if exc.status != 404:  # the agent has not started the build yet
                        raise
                    chunk = b""
                if chunk:
                    status_line.stop()
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                    sys.stdout.flush()
                    status_line.start()
            if build["status"] in FINAL:
                if show_logs:  # the last lines written before the final event
                    try:
                        chunk, offset, _ = dp.logs(build_id, offset)
                        sys.stdout.write(chunk.decode("utf-8", "replace"))
                    except ApiError:
                        pass
                return build
            time.sleep(poll)
    finally:
        status_line.stop()
        dp.close()
