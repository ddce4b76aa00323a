"""A sorted (entity key, event time) index of one feature set version's offline rows, for the
in-memory point-in-time join (`pit_memory`).

Every row gets a composite `(key - kmin) * tspan + (event_us - tmin)`; the index holds the
composites sorted and, for each, the row's global number (files in the order given, rows in file
order). A lookup is then one binary search per entity row, with no need to read or sort the keys
and times of the feature rows again.

The index is derived data, never the source of truth: it is stored under the agent's feature
home, named by a digest of the exact part files it was built from, so a new materialization (new
parts) simply gets a new index and a stale one can never be used for other files. Materialization
builds it right after committing a run, so the first retrieval does not pay for it; a retrieval
that finds none builds and saves it. Each index is written to a temporary directory, then
renamed into place; superseded indexes of the same set version are removed. Arrays are
memory-mapped on load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

_META = "index.json"
_FORMAT = 1


@dataclass(frozen=True)
class PitIndex:
    """See the module docstring. `group_sizes[i]` is the row count of `groups[i]` = (file, row group)."""

    composite: np.ndarray
    order: np.ndarray
    kmin: int
    tmin: int
    tmax: int
    groups: list[tuple[int, int]]
    group_sizes: np.ndarray

    @property
    def tspan(self) -> int:
        return self.tmax - self.tmin + 1

    def lookup(self, keys: np.ndarray, times_us: np.ndarray, ttl_us: int | None) -> tuple[np.ndarray, np.ndarray]:
        """For entity rows (int keys, times in epoch µs): the positions of the rows that get a value,
        and for each the global number of its feature row (latest event time <= the entity time,
        within the TTL)."""
        if len(self.composite) == 0 or len(keys) == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        tspan = self.tspan
        kmax = self.kmin + int(self.composite[-1]) // tspan
        valid = (keys >= self.kmin) & (keys <= kmax) & (times_us >= self.tmin)
        # An entity time after the newest feature row finds that row's neighbours exactly as at tmax.
        probe = (np.where(valid, keys, self.kmin) - self.kmin) * tspan + (np.minimum(times_us, self.tmax) - self.tmin)
        probe[~valid] = -1
        # Searching in sorted order touches the index sequentially (far fewer cache misses).
        sorter = np.argsort(probe)
        hit = np.empty(len(probe), dtype=np.int64)
        hit[sorter] = np.searchsorted(self.composite, probe[sorter], side="right") - 1
        found = valid & (hit >= 0)
        composite = np.asarray(self.composite[np.maximum(hit, 0)])
        found &= composite // tspan == keys - self.kmin
        if ttl_us is not None:
            found &= composite % tspan + self.tmin >= times_us - ttl_us
        rows = np.flatnonzero(found)
        return rows, np.asarray(self.order[hit[rows]])

    def latest(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per key (ascending): the key, the event time (µs) and the global row of its latest row."""
        if len(self.composite) == 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        composite = np.asarray(self.composite)
        keys = composite // self.tspan
        last = np.append(np.flatnonzero(np.diff(keys)), len(keys) - 1)
        return keys[last] + self.kmin, composite[last] % self.tspan + self.tmin, np.asarray(self.order[last])


def read_rows(files: list[str], index: PitIndex, rows: np.ndarray, columns: list[str]) -> tuple[pa.Table, np.ndarray]:
    """`columns` of the given global rows, read one row group at a time, keeping only those rows:
    memory holds one row group's columns at once and reuses it (fresh allocations for a whole set
    cost page faults that dominate a retrieval). Returns the rows in ascending row order and the
    permutation that sorts `rows` (result row i is `rows[sorter[i]]`)."""
    sorter = np.argsort(rows, kind="stable")
    ordered = rows[sorter]
    bounds = np.concatenate([[0], np.cumsum(index.group_sizes)])
    cuts = np.searchsorted(ordered, bounds)  # the slice of `ordered` inside each row group
    taken: list[pa.Table] = []
    handles: dict[int, pq.ParquetFile] = {}
    try:
        for g, (file_index, row_group) in enumerate(index.groups):
            lo, hi = int(cuts[g]), int(cuts[g + 1])
            if lo == hi:
                continue
            handle = handles.get(file_index)
            if handle is None:
                handle = handles[file_index] = pq.ParquetFile(files[file_index])
            table = handle.read_row_group(row_group, columns=columns, use_threads=False)
            taken.append(table.take(pa.array(ordered[lo:hi] - bounds[g])))
    finally:
        for handle in handles.values():
            handle.close()
    return pa.concat_tables(taken, promote_options="permissive"), sorter


def build(files: list[str], key: str) -> PitIndex | None:
    """The index of `files` (Parquet with an int column `key` and `event_timestamp`), or None when
    the key/time range is too wide for an int64 composite."""
    groups: list[tuple[int, int]] = []
    sizes: list[int] = []
    keys: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for i, path in enumerate(files):
        with pq.ParquetFile(path) as handle:
            for g in range(handle.metadata.num_row_groups):
                groups.append((i, g))
                sizes.append(handle.metadata.row_group(g).num_rows)
            table = handle.read(columns=[key, "event_timestamp"], use_threads=False)
        keys.append(table.column(key).to_numpy(zero_copy_only=False).astype(np.int64, copy=False))
        times.append(table.column("event_timestamp").cast(pa.int64()).to_numpy(zero_copy_only=False))
    fk = np.concatenate(keys) if keys else np.empty(0, dtype=np.int64)
    ft = np.concatenate(times) if times else np.empty(0, dtype=np.int64)
    group_sizes = np.array(sizes, dtype=np.int64)
    if len(fk) == 0:
        empty = np.empty(0, dtype=np.int64)
        return PitIndex(empty, empty, 0, 0, 0, groups, group_sizes)
    kmin, kmax, tmin, tmax = int(fk.min()), int(fk.max()), int(ft.min()), int(ft.max())
    if (kmax - kmin + 1) * (tmax - tmin + 1) >= 2**62:
        return None
    composite = (fk - kmin) * (tmax - tmin + 1) + (ft - tmin)
    del fk, ft
    order = np.argsort(composite)  # ties (same key and time) may resolve to any of the tied rows
    return PitIndex(composite[order], order, kmin, tmin, tmax, groups, group_sizes)


def owner(project: str, name: str, version: int) -> str:
    """The cache directory (relative) of one feature set version's index."""
    return f"{project}/{name}/v{int(version)}"


class PitIndexCache:
    """Indexes saved under `root/<set key>/<digest of the files>/` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def _digest(files: list[str], key: str) -> str:
        payload = json.dumps([_FORMAT, key, files]).encode()
        return hashlib.sha256(payload).hexdigest()[:32]

    def put(self, owner: str, files: list[str], key: str, index: PitIndex) -> None:
        """Save an index already built from exactly `files` (best effort: it is a cache)."""
        with contextlib.suppress(OSError):
            self._save(self.root / owner / self._digest(files, key), index)

    def get(self, owner: str, files: list[str], key: str) -> PitIndex | None:
        """The saved index of exactly `files`, built and saved first when there is none; None when
        the data does not fit an int64 composite."""
        directory = self.root / owner / self._digest(files, key)
        loaded = self._load(directory)
        if loaded is not None:
            return loaded
        index = build(files, key)
        if index is not None:
            with contextlib.suppress(OSError):  # a cache: the retrieval goes on with the index in memory
                self._save(directory, index)
        return index

    def _load(self, directory: Path) -> PitIndex | None:
        try:
            meta = json.loads((directory / _META).read_text())
            return PitIndex(
                np.load(directory / "composite.npy", mmap_mode="r"),
                np.load(directory / "order.npy", mmap_mode="r"),
                int(meta["kmin"]),
                int(meta["tmin"]),
                int(meta["tmax"]),
                [(int(f), int(g)) for f, g in meta["groups"]],
                np.array(meta["group_sizes"], dtype=np.int64),
            )
        except (OSError, ValueError, KeyError):
            return None  # missing or unreadable: rebuilt by the caller

    def _save(self, directory: Path, index: PitIndex) -> None:
        parent = directory.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            np.save(tmp / "composite.npy", index.composite)
            np.save(tmp / "order.npy", index.order)
            meta = {
                "kmin": index.kmin,
                "tmin": index.tmin,
                "tmax": index.tmax,
                "groups": index.groups,
                "group_sizes": index.group_sizes.tolist(),
            }
            (tmp / _META).write_text(json.dumps(meta))
            os.rename(tmp, directory)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process saved the same index first: fine
            if not directory.exists():
                raise
        for sibling in parent.iterdir():
            if sibling.name == directory.name:
                continue
            # Another process's save in progress is left alone; one interrupted an hour ago is not.
            if not sibling.name.startswith(".tmp-") or time.time() - sibling.stat().st_mtime > 3600:
                shutil.rmtree(sibling, ignore_errors=True)
