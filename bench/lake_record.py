"""CPU per request of inference-lake logging, measured in-process (stable on a noisy machine).

`python bench/lake_record.py`: for 1-row and 100-row requests of 20 float features (and a
2-column answer), the CPU time of `record_prediction` + `InferenceLake.record` on the calling
thread (the serving event loop's share), then of everything else the lake does for those
requests (rendering the JSON columns, Parquet, the store), best of 3 runs.
"""

from __future__ import annotations

import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from data_plane_agent.lake import InferenceLake
from data_plane_agent.serving.recording import record_prediction
from data_plane_agent.storage import LocalObjectStore


def measure(rows: int, count: int) -> tuple[float, float]:
    """(record() µs of CPU on the caller, flush µs of CPU) per request."""
    deployment: Any = types.SimpleNamespace(
        model="hgb", id="dep_1", spec={"logging": True, "variations": [{"name": "default", "build_id": "b1"}]}
    )
    route: Any = types.SimpleNamespace(name="default", shadow=False)
    rng = np.random.default_rng(0)
    requests = [
        (
            pa.table({f"f{i}": rng.random(rows) for i in range(20)}),
            pa.table({"label": rng.integers(0, 2, rows), "probability": rng.random(rows)}),
        )
        for _ in range(50)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        lake = InferenceLake(
            LocalObjectStore(Path(tmp) / "store"),
            Path(tmp) / "spool",
            flush_interval=3600,
            flush_rows=10**9,
            fsync_interval=3600,
        )
        lake.start()
        started = time.thread_time()
        for i in range(count):
            inputs, outputs = requests[i % len(requests)]
            now_ms = int(time.time() * 1000)
            record_prediction(lake.record, deployment, route, "b1", f"r{i}", now_ms, 1.0, inputs, outputs, None)
        on_caller = (time.thread_time() - started) / count * 1e6
        started = time.process_time()
        lake.flush()
        rest = (time.process_time() - started) / count * 1e6
        lake.close()
    return on_caller, rest


def main() -> None:
    for rows, count in ((1, 10_000), (100, 2_000)):
        record_us, flush_us = min((measure(rows, count) for _ in range(3)), key=sum)
        print(
            f"{rows:>3} rows x 20 floats: record() {record_us:7.1f} us CPU on the caller; "
            f"render + Parquet {flush_us:7.1f} us CPU; total {record_us + flush_us:7.1f} us per request"
        )


if __name__ == "__main__":
    main()
