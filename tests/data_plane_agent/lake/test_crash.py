"""The lake's loss window, with a real process: after SIGTERM every recorded row is in Parquet;
after kill -9 every acknowledged row comes back from the spool at the next start, none twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from data_plane_agent.lake import InferenceLake, LakeQuery
from data_plane_agent.storage import LocalObjectStore
from tests.helpers.servers import repo_root, wait_for


class LakeProcess:
    def __init__(self, tmp_path: Path, count: int, kind: str = "json") -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.data_plane_agent.lake.lake_proc",
                str(tmp_path / "store"),
                str(tmp_path / "spool"),
                str(count),
                kind,
            ],
            cwd=repo_root(),
            env={**os.environ, "PYTHONPATH": str(repo_root())},
            stdout=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def acked(self) -> int:
        counts = [int(line.split()[1]) for line in list(self.lines) if line.startswith("acked ")]
        return max(counts, default=0)

    def finish(self) -> None:
        self.proc.wait(30)
        self._reader.join(10)


def _request_ids(store: LocalObjectStore) -> list[str]:
    rows = LakeQuery(store, max_rows=10_000_000).run("SELECT request_id FROM predictions").rows
    return [r[0] for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["json", "arrow"])  # records holding JSON text, or Arrow tables as the engine's
def test_kill_9_loses_no_acknowledged_row_and_replay_duplicates_none(tmp_path: Path, kind: str) -> None:
    lake = LakeProcess(tmp_path, 10_000_000, kind)
    wait_for(lambda: lake.acked() >= 5_000, timeout=60, what="5,000 acknowledged rows")
    wait_for(lambda: any((tmp_path / "store").rglob("*.parquet")), timeout=30, what="a first flush")
    lake.proc.send_signal(signal.SIGKILL)
    lake.finish()
    acked = lake.acked()
    assert "done" not in lake.lines  # killed while recording

    store = LocalObjectStore(tmp_path / "store")
    in_parquet_before = len(_request_ids(store))
    assert 0 < in_parquet_before < acked  # some rows were only in the spool
    replayed = InferenceLake(store, tmp_path / "spool")
    replayed.start()  # replays the dead process's spool segments
    replayed.close()
    ids = _request_ids(store)
    assert len(ids) == len(set(ids)), "a row was written twice"
    assert {f"r{i}" for i in range(acked)} <= set(ids), "an acknowledged row was lost"
    assert list((tmp_path / "spool").iterdir()) == []


@pytest.mark.parametrize("kind", ["json", "arrow"])
def test_sigterm_flushes_every_recorded_row_to_parquet(tmp_path: Path, kind: str) -> None:
    lake = LakeProcess(tmp_path, 3_000, kind)
    wait_for(lambda: "done" in lake.lines, timeout=60, what="3,000 rows recorded")
    lake.proc.send_signal(signal.SIGTERM)
    lake.finish()
    assert lake.proc.returncode == 0
    assert list((tmp_path / "spool").iterdir()) == []  # nothing left to replay: all of it is Parquet
    ids = _request_ids(LocalObjectStore(tmp_path / "store"))
    assert sorted(ids) == sorted(f"r{i}" for i in range(3_000))
