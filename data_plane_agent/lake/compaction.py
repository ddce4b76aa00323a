"""Compaction: the many small files of an hour that is over become one file.

Each flush writes one small file per partition (`<segment id>.parquet`); an hour of steady
traffic leaves about `3600 / flush_interval` of them. Once an hour has been over for `settle`
seconds, its files are merged into `c-<largest segment id merged>.parquet`.

Readers see, per partition, the newest compacted file and the segment files named after it
(`visible()`): segment ids grow with time and segments are flushed in order, so every file a
compaction merged has an id at or below the compacted file's, and a late file (rows of that
hour flushed after the compaction) has a larger one. Merged files are hidden from the moment
the compacted file exists and deleted one compaction pass later, so a query that listed them
just before can still read them. A crash between the two steps leaves hidden files that the
next pass deletes: never a row counted twice, never one lost.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from calendar import timegm
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from threading import Event

import pyarrow.parquet as pq

from data_plane_agent.lake.table import DICTIONARY_COLUMNS, FILE_SCHEMA, LAKE_PREFIX, conform, parquet_compression
from data_plane_agent.storage import ObjectStore

log = logging.getLogger("mallard.agent.lake")

COMPACTED = "c-"
_HOUR_DIR = re.compile(r"/date=(\d{4})-(\d{2})-(\d{2})/hour=(\d{2})$")


def _split(key: str) -> tuple[str, str]:
    directory, _, name = key.rpartition("/")
    return directory, name.removesuffix(".parquet")


def visible(keys: Iterable[str]) -> list[str]:
    """The Parquet keys a reader should see (see the module docstring), in key order."""
    by_dir: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        if key.endswith(".parquet"):
            directory, name = _split(key)
            by_dir[directory].append(name)
    shown: list[str] = []
    for directory, names in by_dir.items():
        compacted = [n for n in names if n.startswith(COMPACTED)]
        top = max(compacted, default=None)
        if top is None:
            shown.extend(f"{directory}/{n}.parquet" for n in names)
            continue
        covered = top.removeprefix(COMPACTED)
        shown.append(f"{directory}/{top}.parquet")
        shown.extend(f"{directory}/{n}.parquet" for n in names if not n.startswith(COMPACTED) and n > covered)
    return sorted(shown)


def hour_end(directory: str) -> float | None:
    """When the hour of a partition directory ends (Unix seconds), None if it is not one."""
    match = _HOUR_DIR.search(directory)
    if match is None:
        return None
    year, month, day, hour = (int(g) for g in match.groups())
    return float(timegm((year, month, day, hour, 0, 0)) + 3600)


class Compactor:
    """Merges the files of finished hours; `run_once()` is one pass (called periodically)."""

    def __init__(self, store: ObjectStore, work_dir: Path, *, settle_seconds: float = 900.0) -> None:
        self.store = store
        self.work_dir = work_dir
        self.settle_seconds = settle_seconds
        self._hidden_last_pass: set[str] = set()

    def run_once(
        self, now: float | None = None, *, pending: Callable[[], set[str]] | None = None, stop: Event | None = None
    ) -> int:
        """Delete what the previous pass hid, then compact every finished hour with 2+ visible files.

        Partitions holding a file of a segment the writer still has `pending` (a flush that failed
        half-way) wait for a later pass; `stop` ends the pass between partitions.
        """
        now = time.time() if now is None else now
        keys = [k for k in self.store.list(LAKE_PREFIX + "/") if k.endswith(".parquet")]
        shown = set(visible(keys))
        hidden = set(keys) - shown
        for key in sorted(hidden & self._hidden_last_pass):
            self.store.delete(key)
        by_dir: dict[str, list[str]] = defaultdict(list)
        for key in sorted(shown):
            by_dir[key.rpartition("/")[0]].append(key)
        merged = 0
        for directory, members in by_dir.items():
            end = hour_end(directory)
            if len(members) < 2 or end is None or end + self.settle_seconds > now:
                continue
            if stop is not None and stop.is_set():
                break
            busy = pending() if pending is not None else set()
            if any(_split(k)[1] in busy for k in members):
                continue
            newest = max(_split(k)[1].removeprefix(COMPACTED) for k in members)
            self._merge(members, f"{directory}/{COMPACTED}{newest}.parquet")
            hidden.update(members)
            merged += 1
        self._hidden_last_pass = hidden
        return merged

    def _merge(self, members: list[str], target: str) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            out = Path(tmp) / "compacted.parquet"
            rows = 0
            with pq.ParquetWriter(
                out, FILE_SCHEMA, compression=parquet_compression("zstd"), use_dictionary=DICTIONARY_COLUMNS
            ) as writer:
                for key in members:  # one member on local disk at a time: memory stays at one batch
                    local = Path(tmp) / "member.parquet"
                    self.store.get_to_file(key, local)
                    for batch in pq.ParquetFile(local).iter_batches(batch_size=65_536):
                        writer.write_batch(conform(batch))
                        rows += batch.num_rows
                    local.unlink()
            self.store.put_file(target, out)
        log.info("lake: compacted %d files (%d rows) into %s", len(members), rows, target)
