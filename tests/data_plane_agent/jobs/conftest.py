from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.object_stores import s3  # noqa: F401  (the shared session fixture)
from tests.helpers.servers import repo_root

FEATURES = 20


def write_rows(path: Path, start: int, count: int, *, chunk: int = 100_000, row_group: int = 50_000) -> None:
    """Rows `row_id` start..start+count-1 with FEATURES float columns f0.. (f_i = row_id * (i + 1) / 1000)."""
    schema = pa.schema([("row_id", pa.int64())] + [(f"f{i}", pa.float64()) for i in range(FEATURES)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, schema) as writer:
        for first in range(start, start + count, chunk):
            ids = np.arange(first, min(first + chunk, start + count), dtype=np.int64)
            columns = [pa.array(ids)] + [pa.array(ids * (i + 1) / 1000.0) for i in range(FEATURES)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=row_group)


def expected_score(row_id: int) -> float:
    return sum(row_id * (i + 1) / 1000.0 for i in range(FEATURES))


@pytest.fixture(scope="session")
def million_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000,000 input rows in two files (600k + 400k), 50k-row row groups; 168 MB once decoded."""
    root = tmp_path_factory.mktemp("batch-input")
    write_rows(root / "a.parquet", 0, 600_000)
    write_rows(root / "b.parquet", 600_000, 400_000)
    return root


@dataclass
class JobProcess:
    proc: subprocess.Popen[str]

    def lines(self) -> list[dict[str, Any]]:
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err[-3000:]
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def start_job(spec: dict[str, object], home: Path, store_dir: Path, *, delay_ms: int = 0) -> JobProcess:
    """The job in its own process (tests/data_plane_agent/jobs/job_proc.py)."""
    home.mkdir(parents=True, exist_ok=True)
    spec_file = home / f"spec-{os.getpid()}-{len(list(home.iterdir()))}.json"
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(repo_root()), "JOB_PROC_DELAY_MS": str(delay_ms)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.data_plane_agent.jobs.job_proc", str(spec_file), str(home), str(store_dir)],
        cwd=repo_root(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return JobProcess(proc)
