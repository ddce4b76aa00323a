"""The in-process peer: the artifact's `model.predict` called directly, no server, pinned to the
servers' core. Two measurements, one JSON object on stdout:

    python -m bench.serving_bench.direct --model-dir DIR --cpu 0 --seconds 3 [--parquet F --batch-rows N]

- `calls`: for 1-row and 100-row DataFrames (the benchmark's payload rows), `predict` calls per
  second (wall clock and per CPU-second) and the p50 of one call, back to back for `--seconds` each.
- `batch` (with `--parquet`): raw `model.predict` over every row of the file in chunks of
  `--batch-rows`, the chunks already in memory as DataFrames: rows per second of predict alone
  (the floor a batch job's throughput is compared with; reading and writing Parquet excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import pandas as pd

from bench.serving_bench.project import rows
from mallard.state import load_model


def time_calls(model: Any, frame: pd.DataFrame, seconds: float) -> dict[str, float]:
    model.predict(frame)  # warm
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    cpu_before = time.thread_time()
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        model.predict(frame)
        durations.append(time.perf_counter() - began)
    cpu = time.thread_time() - cpu_before
    return {
        "calls": len(durations),
        "calls_per_s": len(durations) / sum(durations),
        "p50_ms": statistics.median(durations) * 1000,
        "calls_per_cpu_s": len(durations) / cpu if cpu > 0 else 0.0,  # steady when other work shares the core
    }


def time_batch(model: Any, parquet: str, batch_rows: int) -> dict[str, float]:
    import pyarrow.parquet as pq

    chunks = [b.to_pandas() for b in pq.ParquetFile(parquet).iter_batches(batch_size=batch_rows)]
    model.predict(chunks[0])
    began = time.perf_counter()
    total = sum(len(model.predict(chunk)) for chunk in chunks)
    seconds = time.perf_counter() - began
    return {"rows": total, "seconds": seconds, "rows_per_s": total / seconds}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--parquet")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    model = load_model(args.model_dir)
    out: dict[str, Any] = {
        "calls": {str(n): time_calls(model, pd.DataFrame.from_records(rows(n)), args.seconds) for n in (1, 100)}
    }
    if args.parquet:
        out["batch"] = time_batch(model, args.parquet, args.batch_rows)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
