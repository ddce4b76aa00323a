"""The inference lake's buffered writer.

`record()` is called once per answer (live and shadow) by the serving engine, on its event loop,
so it does as little as it can: it feeds the per-minute aggregates, then, when the model's
logging is on, appends the record to the spool (the request and answer tables as Arrow record
batches, one `writev(2)`, see spool.py) and keeps it, tables and all, in an in-memory buffer. It
never waits for the disk: the background thread fsyncs the spool outside the lock `record()`
takes. Every `fsync_interval` seconds that thread also turns the buffered records into rows of
the file schema, the inputs and outputs rendered to JSON in bulk (jsonrows.py), and every
`flush_interval` seconds or `flush_rows` rows it writes them to Parquet: one file per partition
touched, named after the spool segment, so a flush that is repeated after a crash rewrites the
same keys instead of duplicating rows. A second thread compacts finished hours (`compactor`,
every `compact_interval` seconds).

Loss window: none on SIGTERM (`close()` flushes everything) nor on `kill -9` of the agent (every
recorded row is in the spool file, replayed at the next start); on a power loss or kernel crash,
at most the last `fsync_interval` seconds of rows (default 1 s).
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_plane_agent.lake.compaction import Compactor
from data_plane_agent.lake.metrics import MinuteMetrics
from data_plane_agent.lake.records import PredictionRecord
from data_plane_agent.lake.spool import Segment, Spool, prepare
from data_plane_agent.lake.table import (
    DICTIONARY_COLUMNS,
    FILE_SCHEMA,
    parquet_compression,
    partition_dir,
    split_by_partition,
    to_file_table,
    with_partitions,
)
from data_plane_agent.storage import ObjectStore

log = logging.getLogger("mallard.agent.lake")
RETRY_SECONDS = 5.0  # between attempts to write spooled rows while the store fails


@dataclass
class _Closed:
    """A rotated spool segment waiting to become Parquet (its rows dropped from memory if it waits long)."""

    path: Path
    id: str
    size: int
    table: pa.Table | None  # the rows in the file schema; None: read them from the spool file again

    def load(self) -> pa.Table:
        return self.table if self.table is not None else to_file_table(Spool.read(self.path))


class InferenceLake:
    """Buffered, crash-safe writer of the `predictions` log. `start()`, `record()`..., `close()`."""

    def __init__(
        self,
        store: ObjectStore,
        spool_dir: Path,
        *,
        flush_interval: float = 30.0,
        flush_rows: int = 20_000,
        fsync_interval: float = 1.0,
        max_spool_bytes: int = 2 * 1024**3,
        metrics: MinuteMetrics | None = None,
        logging_enabled: Callable[[str], bool] | None = None,
        compactor: Compactor | None = None,
        compact_interval: float = 600.0,
    ) -> None:
        self.store = store
        self.spool = Spool(spool_dir)
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self.fsync_interval = fsync_interval
        self.max_spool_bytes = max_spool_bytes
        self.metrics = metrics
        self.logging_enabled = logging_enabled
        self.compactor = compactor
        self.compact_interval = compact_interval
        self._compaction_thread: threading.Thread | None = None
        self.dropped = 0  # rows refused because the spool was full (the store unreachable for long)
        self._lock = threading.Lock()  # the current segment, the buffers, the closed list (never held for I/O)
        self._flush_lock = threading.Lock()  # one flush or render at a time; queries see a consistent snapshot
        self._segment: Segment | None = None
        self._buffer: list[PredictionRecord] = []  # recorded, not rendered yet
        self._rendered: list[pa.Table] = []  # earlier records of the current segment, in the file schema
        self._rendered_rows = 0
        self._closed: list[_Closed] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_drop_log = 0.0
        self._retry_at = 0.0

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Replay segments a previous run left behind, then start the background flusher."""
        for path in self.spool.leftovers():
            self._closed.append(_Closed(path, path.name.rsplit(".", 1)[0], path.stat().st_size, None))
        if self._closed:
            log.info("lake: replaying %d spool segment(s) left by the previous run", len(self._closed))
            self._write_closed()
        with self._lock:
            self._segment = self.spool.new_segment()
        self._thread = threading.Thread(target=self._run, name="lake-flusher", daemon=True)
        self._thread.start()
        if self.compactor is not None:
            self._compaction_thread = threading.Thread(target=self._compact, name="lake-compactor", daemon=True)
            self._compaction_thread.start()

    def close(self) -> None:
        """Flush everything recorded so far and stop (safe to call twice)."""
        self._stop.set()
        self._wake.set()
        for thread in (self._thread, self._compaction_thread):
            if thread is not None:
                thread.join()
        self._thread = self._compaction_thread = None
        self.flush()
        with self._lock:
            segment, self._segment = self._segment, None
        if segment is not None:
            segment.close()
            if segment.size == 0:
                segment.path.unlink(missing_ok=True)
        if self.metrics is not None:
            self.metrics.tick(final=True)

    # ---- the hot path ----------------------------------------------------------------------

    def record(self, record: PredictionRecord) -> None:
        """Log one answer. Never raises into the serving path: problems are logged and counted."""
        if self.metrics is not None:
            self.metrics.observe(record)
        if self.logging_enabled is not None and not self.logging_enabled(record.model):
            return
        try:
            encoded = prepare(record)
        except (TypeError, ValueError, pa.ArrowException) as exc:
            log.warning("lake: cannot encode the record of request %s: %s", record.request_id, exc)
            self.dropped += 1
            return
        with self._lock:
            segment = self._segment
            if segment is None or self._spooled_bytes() + encoded.size > self.max_spool_bytes:
                self._drop("the lake is closed" if segment is None else "the spool is full")
                return
            segment.append(encoded)
            record.inputs_spooled, record.outputs_spooled = encoded.inputs, encoded.outputs
            self._buffer.append(record)
            if len(self._buffer) + self._rendered_rows >= self.flush_rows:
                self._wake.set()

    def _spooled_bytes(self) -> int:
        current = self._segment.size if self._segment is not None else 0
        return current + sum(c.size for c in self._closed)

    def _drop(self, why: str) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._last_drop_log > 60:
            self._last_drop_log = now
            log.error("lake: dropping prediction log rows (%s); %d dropped so far", why, self.dropped)

    # ---- flushing --------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered row to Parquet now (rows stay spooled if the store fails)."""
        with self._flush_lock:
            fresh = self.spool.new_segment() if self._buffer or self._rendered else None
            with self._lock:
                old = self._segment
                if fresh is not None and old is not None and (self._buffer or self._rendered):
                    records, rendered = self._buffer, self._rendered
                    self._segment, self._buffer, self._rendered, self._rendered_rows = fresh, [], [], 0
                    closed = _Closed(old.path, old.id, old.size, None)
                    self._closed.append(closed)
                    fresh = None
                else:
                    old = None
            if fresh is not None:  # nothing to rotate after all
                fresh.close()
                fresh.path.unlink(missing_ok=True)
            if old is not None:
                old.close()  # fsync: the rows are durable before the Parquet write
                closed.table = _concat([*rendered, to_file_table(records)])
            self._write_closed()

    def _render(self) -> None:
        """Turn the records buffered so far into file-schema rows (JSON made), off the event loop."""
        with self._flush_lock:
            with self._lock:
                records, self._buffer = self._buffer, []
            if not records:
                return
            try:
                table = to_file_table(records)
            except BaseException:
                with self._lock:
                    self._buffer[:0] = records
                raise
            with self._lock:
                self._rendered.append(table)
                self._rendered_rows += len(records)

    def _write_closed(self) -> None:
        while self._closed:
            closed = self._closed[0]
            try:
                self._write_segment(closed)
            except Exception as exc:
                self._retry_at = time.monotonic() + RETRY_SECONDS
                log.warning("lake: could not write spool segment %s to the store (%s); will retry", closed.id, exc)
                # Keep the rows on disk only, so a long store outage does not grow memory.
                for waiting in self._closed[1:]:
                    waiting.table = None
                return
            closed.path.unlink(missing_ok=True)
            with self._lock:
                self._closed.pop(0)

    def _write_segment(self, closed: _Closed) -> None:
        for (model, date, hour), table in split_by_partition(closed.load()):
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression=parquet_compression("lz4"), use_dictionary=DICTIONARY_COLUMNS)
            key = f"{partition_dir(model, date, hour)}/{closed.id}.parquet"
            self.store.put_stream(key, io.BytesIO(sink.getvalue().to_pybytes()))

    def _run(self) -> None:
        last_flush = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(min(self.fsync_interval, self.flush_interval))
            self._wake.clear()
            try:
                with self._lock:
                    segment = self._segment
                    retry = bool(self._closed) and time.monotonic() >= self._retry_at
                    due = len(self._buffer) + self._rendered_rows >= self.flush_rows or retry
                if segment is not None:
                    segment.sync()  # not under the lock: record() never waits for the disk
                if due or time.monotonic() - last_flush >= self.flush_interval:
                    self.flush()
                    last_flush = time.monotonic()
                else:
                    self._render()
                if self.metrics is not None:
                    self.metrics.tick()
            except Exception:  # the flusher must outlive any one failure
                log.exception("lake: background flush failed")

    def _pending_ids(self) -> set[str]:
        with self._lock:
            return {c.id for c in self._closed}

    def _compact(self) -> None:
        assert self.compactor is not None
        while not self._stop.wait(self.compact_interval):
            try:
                self.compactor.run_once(pending=self._pending_ids, stop=self._stop)
            except Exception:  # a failed pass leaves every file readable; the next pass retries
                log.exception("lake: compaction pass failed")

    # ---- reads -----------------------------------------------------------------------------

    def unflushed(self) -> tuple[pa.Table, set[str]]:
        """Rows not in Parquet yet (full `predictions` schema), and the ids of their segments.

        Call under `snapshot_lock()` together with listing the files, so a row is seen once.
        """
        with self._lock:
            closed = list(self._closed)
            rendered = list(self._rendered)
            current = list(self._buffer)
            current_id = self._segment.id if self._segment is not None else ""
        tables = [*(c.load() for c in closed), *rendered, to_file_table(current)]
        return with_partitions(_concat(tables)), {c.id for c in closed} | ({current_id} if current_id else set())

    def snapshot_lock(self) -> threading.Lock:
        """Held while a query lists files and takes the unflushed rows (no flush in between)."""
        return self._flush_lock


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return FILE_SCHEMA.empty_table()
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)
