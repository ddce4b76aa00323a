"""Batch scoring: Parquet in, predictions out as part files, in bounded memory, resumable.

The input is cut into fixed-size batches (batch n = input rows [n*B, (n+1)*B), see batch_input.py).
Batch n becomes the part file `part-<n:06d>.parquet` under the output (a directory or an S3
prefix): the input columns followed by the model's output columns (an output named like an input
column is written as `<name>_prediction`). A part is written whole (temporary file + rename, or
one S3 put), then the checkpoint `<home>/jobs/<deployment>/batch.json` moves past it, so a job
killed at any point resumes at the first part it had not finished and rewrites that part under
the same name: no duplicated and no missing rows. Memory holds about `PIPELINE` batches (one
being read, up to two being predicted, one being written) plus one row group of the input.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from data_plane_agent.jobs.batch_input import BatchInput
from data_plane_agent.storage import LocalObjectStore, ObjectStore
from data_plane_agent.storage.arrow import s3_settings
from shared.errors import InvalidInput, ModelFailed
from shared.serving import DEFAULT_BATCH_ROWS, ApplySpec, DeploymentState, StatusPayload

log = logging.getLogger("mallard.agent.jobs")

PIPELINE = 2  # predictions in flight (the next batch is read and the previous written meanwhile)
PROGRESS_SECONDS = 1.0
PART = "part-{:06d}.parquet"


@dataclass
class Checkpoint:
    """How far a batch job got: every part below `next_part` is written."""

    fingerprint: str
    output: str
    batch_rows: int
    next_part: int = 0
    rows_done: int = 0
    done: bool = False

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        """Replace the checkpoint atomically. Not synced: every part it counts was synced before,
        so after a power loss the file is this one, an older one (parts are redone, under the
        same names) or unreadable (the job starts over, removing its parts): never ahead of the
        parts on disk."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(asdict(self), handle)
        os.replace(tmp, path)


def open_output(location: str, *, store: ObjectStore | None) -> ObjectStore:
    """The output location as an object store (parts are put atomically on both backends)."""
    parsed = urlparse(location)
    if parsed.scheme == "s3":
        if len(parsed.netloc) < 3:
            raise InvalidInput(f"batch output {location!r} needs a bucket name of 3+ characters", field="batch.output")
        from data_plane_agent.storage.s3 import S3ObjectStore

        endpoint, region = s3_settings(store)
        return S3ObjectStore(parsed.netloc, parsed.path, endpoint_url=endpoint, region=region)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme else location
        if not path:
            raise InvalidInput(f"batch output {location!r} names no directory", field="batch.output")
        return LocalObjectStore(Path(path).expanduser())
    raise InvalidInput(f"batch output {location!r}: use a directory, file:// or s3://", field="batch.output")


def _check_locations(input_: str, output: str) -> None:
    """Refuse an output inside the input: the next run would read its own parts as input."""
    if urlparse(input_).scheme == "s3" or urlparse(output).scheme == "s3":
        same = output.rstrip("/") + "/"
        if same.startswith(input_.rstrip("/") + "/"):
            raise InvalidInput(f"batch.output {output!r} must not be inside batch.input", field="batch.output")
        return
    source = Path(urlparse(input_).path or input_).expanduser().resolve()
    target = Path(urlparse(output).path or output).expanduser().resolve()
    if target == source or source in target.parents:
        raise InvalidInput(f"batch.output {output!r} must not be inside batch.input", field="batch.output")


def _merge(inputs: pa.Table, outputs: pa.Table, first_row: int) -> pa.Table:
    if outputs.num_rows != inputs.num_rows:
        raise ModelFailed(
            f"the model returned {outputs.num_rows} rows for a batch of {inputs.num_rows} "
            f"(input rows {first_row}..{first_row + inputs.num_rows - 1})"
        )
    merged = inputs
    taken = set(inputs.column_names)
    for name, column in zip(outputs.column_names, outputs.columns, strict=True):
        out_name = f"{name}_prediction" if name in taken else name
        taken.add(out_name)
        merged = merged.append_column(out_name, column)
    return merged


def _write_part(output: ObjectStore, number: int, table: pa.Table) -> None:
    # Dictionary encoding only pays for text; on numbers it costs about 5x the write time. Snappy,
    # the Parquet default of pyarrow and Spark: zstd costs about 4x the write time of a part and
    # gains little on float columns.
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    options = {"compression": "snappy", "use_dictionary": text}
    if isinstance(output, LocalObjectStore):
        with output.writing(PART.format(number)) as handle:  # straight into the file: no in-memory copy
            pq.write_table(table, handle, **options)
        return
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    sink.seek(0)
    output.put_stream(PART.format(number), sink)


class _Progress:
    def __init__(self, report: Callable[[StatusPayload], None], spec: ApplySpec, rows_total: int) -> None:
        self._report = report
        self._spec = spec
        self.rows_total = rows_total
        self._last = 0.0

    def __call__(self, rows_done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_SECONDS:
            return
        self._last = now
        self._report(
            StatusPayload(
                deployment_id=self._spec["deployment_id"],
                revision=self._spec.get("revision", 0),
                state=DeploymentState.RUNNING,
                message=f"batch: {rows_done} of {self.rows_total} rows",
                rows_done=rows_done,
                rows_total=self.rows_total,
            )
        )


async def run_batch(
    *,
    spec: ApplySpec,
    predict: Callable[[pa.Table], Awaitable[pa.Table]],
    report: Callable[[StatusPayload], None],
    home: Path,
    store: ObjectStore,
    stop: asyncio.Event,
) -> None:
    """Score the whole input (or what is left of it after a crash).

    Returns early when `stop` is set (the caller knows it asked): the parts written so far stay,
    and the next run resumes after them.
    """
    batch = spec.get("batch")
    if not batch:
        raise InvalidInput("a batch deployment needs batch.input and batch.output", field="batch")
    batch_rows = int(batch.get("batch_rows") or DEFAULT_BATCH_ROWS)
    if batch_rows < 1:
        raise InvalidInput("batch.batch_rows must be at least 1", field="batch.batch_rows")
    _check_locations(batch["input"], batch["output"])
    source = await asyncio.to_thread(BatchInput.open, batch["input"], store=store)
    output = open_output(batch["output"], store=store)
    if isinstance(output, LocalObjectStore):  # half-written parts of a killed run (S3 puts are atomic)
        for leftover in output.root.glob(".put-*"):
            leftover.unlink(missing_ok=True)
    checkpoint_path = home / "jobs" / spec["deployment_id"] / "batch.json"
    # Same input and same builds: resume (or stay done); a new build or input scores everything again.
    builds = sorted(v.get("build_id", "") for v in spec.get("variations", []) if not v.get("shadow"))
    identity = hashlib.sha256(json.dumps([source.fingerprint(), builds]).encode()).hexdigest()
    fresh = Checkpoint(identity, batch["output"], batch_rows)
    checkpoint = Checkpoint.load(checkpoint_path)
    if checkpoint is None or (checkpoint.fingerprint, checkpoint.output, checkpoint.batch_rows) != (
        fresh.fingerprint,
        fresh.output,
        fresh.batch_rows,
    ):
        # A new job (or a changed input): parts left by an earlier one would mix in, remove them.
        for key in await asyncio.to_thread(lambda: list(output.list("part-"))):
            await asyncio.to_thread(output.delete, key)
        checkpoint = fresh
        await asyncio.to_thread(checkpoint.save, checkpoint_path)
    elif checkpoint.next_part:
        log.info(
            "batch %s resumes at part %d (%d rows done)",
            spec["deployment_id"],
            checkpoint.next_part,
            checkpoint.rows_done,
        )
    progress = _Progress(report, spec, source.rows_total)
    progress(checkpoint.rows_done, force=True)
    try:
        if not checkpoint.done:
            await _score(source, output, checkpoint, checkpoint_path, predict, progress, stop)
    finally:
        output.close()
    progress(checkpoint.rows_done, force=True)


async def _score(
    source: BatchInput,
    output: ObjectStore,
    checkpoint: Checkpoint,
    checkpoint_path: Path,
    predict: Callable[[pa.Table], Awaitable[pa.Table]],
    progress: _Progress,
    stop: asyncio.Event,
) -> None:
    batches = source.batches(checkpoint.batch_rows, start=checkpoint.next_part)
    inflight: deque[tuple[int, int, pa.Table, asyncio.Task[pa.Table]]] = deque()
    exhausted = False
    try:
        while True:
            while not exhausted and len(inflight) < PIPELINE and not stop.is_set():
                item = await asyncio.to_thread(next, batches, None)
                if item is None:
                    exhausted = True
                    break
                number, first_row, table = item
                inflight.append((number, first_row, table, asyncio.ensure_future(predict(table))))
            if stop.is_set():
                log.info("batch stopped at %d of %d rows; it resumes there", checkpoint.rows_done, source.rows_total)
                return
            if not inflight:
                break
            number, first_row, table, task = inflight.popleft()
            merged = _merge(table, await task, first_row)
            await asyncio.to_thread(_write_part, output, number, merged)
            checkpoint.next_part = number + 1
            checkpoint.rows_done = first_row + table.num_rows
            await asyncio.to_thread(checkpoint.save, checkpoint_path)
            progress(checkpoint.rows_done)
        checkpoint.done = True
        await asyncio.to_thread(checkpoint.save, checkpoint_path)
    finally:
        for *_, task in inflight:
            task.cancel()
