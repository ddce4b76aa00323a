"""Runs one batch or streaming job in its own process, so tests can kill it -9 mid-way.

`python -m tests.data_plane_agent.jobs.job_proc SPEC.json HOME STORE_DIR`: the model is in-process
(score = sum of the numeric feature columns; streaming rows may carry "fail": true to be refused).
Status reports are printed as JSON lines; the last line is `{"rss_before_kib",
"peak_after_250k_rows_kib", "peak_rss_kib"}` (VmRSS before the job, VmHWM once 250,000 rows
reached the model, and at the end), for the bounded-memory assertion. JOB_PROC_DELAY_MS slows the
model down so a test can kill the job mid-way.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from data_plane_agent.jobs import run_job
from data_plane_agent.storage import LocalObjectStore
from shared.errors import ModelFailed
from shared.serving import ApplySpec, StatusPayload


def _proc_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


DELAY_S = float(os.environ.get("JOB_PROC_DELAY_MS", "0")) / 1000
QUARTER_MILLION: list[int] = []  # VmHWM once 250,000 rows reached the model
SEEN = [0]


async def predict(table: pa.Table) -> pa.Table:
    SEEN[0] += table.num_rows
    if SEEN[0] >= 250_000 and not QUARTER_MILLION:
        QUARTER_MILLION.append(_proc_kib("VmHWM"))
    if DELAY_S:
        await asyncio.sleep(DELAY_S)  # a slower model, so a test can kill the job mid-way
    if "fail" in table.column_names and pc.any(pc.fill_null(table.column("fail"), False)).as_py():
        raise ModelFailed("the model refused a row with fail=true")
    features = [c for c in table.column_names if c.startswith("f")]
    total = table.column(features[0])
    for name in features[1:]:
        total = pc.add(total, table.column(name))
    return pa.table({"score": pc.cast(total, pa.float64())})


def report(status: StatusPayload) -> None:
    print(json.dumps(status), flush=True)


async def main(spec: ApplySpec, home: Path, store_dir: Path) -> None:
    before = _proc_kib("VmRSS")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await run_job(spec=spec, predict=predict, report=report, home=home, store=LocalObjectStore(store_dir), stop=stop)
    quarter = QUARTER_MILLION[0] if QUARTER_MILLION else before
    print(
        json.dumps({"rss_before_kib": before, "peak_after_250k_rows_kib": quarter, "peak_rss_kib": _proc_kib("VmHWM")}),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), Path(sys.argv[3])))
