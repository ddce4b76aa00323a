"""The batch input (N rows of the 20 features, one Parquet file) and reading a job's output back."""

from __future__ import annotations

from pathlib import Path

from bench.serving_bench.project import FEATURES

CHUNK = 100_000


def write_input(path: Path, count: int, seed: int = 3) -> Path:
    """`count` rows of random features in `path`, written in chunks (bounded memory)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    schema = pa.schema([pa.field(name, pa.float64()) for name in FEATURES])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, count, CHUNK):
            values = rng.normal(0.0, 1.0, (min(CHUNK, count - start), len(FEATURES)))
            writer.write_table(pa.table({n: values[:, i] for i, n in enumerate(FEATURES)}, schema=schema))
    return path


def output_parts(directory: Path) -> list[tuple[float, int]]:
    """(modification time, rows) of every Parquet part file under `directory`, oldest first."""
    import pyarrow.parquet as pq

    parts = []
    for file in directory.rglob("*.parquet"):
        parts.append((file.stat().st_mtime, pq.ParquetFile(file).metadata.num_rows))
    return sorted(parts)


def steady_rate(parts: list[tuple[float, int]]) -> float | None:
    """Rows per second between the first and the last part written (the job's steady state:
    replica start-up and the first batch excluded); None with fewer than 3 parts."""
    if len(parts) < 3 or parts[-1][0] <= parts[0][0]:
        return None
    return sum(rows for _, rows in parts[1:]) / (parts[-1][0] - parts[0][0])
