"""A lake in its own process, for kill -9 and SIGTERM tests.

`python -m tests.data_plane_agent.lake.lake_proc STORE_DIR SPOOL_DIR COUNT [json|arrow]`: records
COUNT predictions r0, r1, ... as fast as it can (flushing every 0.2 s or 500 rows), printing
`acked N` after every 100th `record()` returned, then `done`, then waits; SIGTERM closes the
lake (flush) and exits 0. With `arrow` the records hold Arrow tables, as the serving engine's do;
with `json` (the default) JSON text.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from data_plane_agent.lake import InferenceLake, PredictionRecord
from data_plane_agent.storage import LocalObjectStore
from tests.data_plane_agent.lake.conftest import make_record


def arrow_record(i: int) -> PredictionRecord:
    fields: dict[str, Any] = {name: getattr(make_record(i), name) for name in PredictionRecord.__slots__}
    fields["inputs"] = pa.table({"age": [i], "plan": ["pro"]})
    fields["outputs"] = pa.table({"churn_probability": [i / 1000]})
    return PredictionRecord(**fields)


def main(store_dir: Path, spool_dir: Path, count: int, kind: str = "json") -> None:
    make = arrow_record if kind == "arrow" else make_record
    lake = InferenceLake(LocalObjectStore(store_dir), spool_dir, flush_interval=0.2, flush_rows=500)
    lake.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    for i in range(count):
        if stop.is_set():
            break
        lake.record(make(i))
        if (i + 1) % 100 == 0:
            print(f"acked {i + 1}", flush=True)
    print("done", flush=True)
    stop.wait()
    lake.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:5])
