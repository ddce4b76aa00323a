"""The lake's write-ahead spool: every recorded prediction is appended to a local segment file
before `record()` returns, so a killed agent loses nothing the kernel has accepted.

A segment is a file of JSON lines under `<home>/lake/spool/`, one record per line, named by a
segment id that sorts by creation time. The writer rotates the current segment at each flush,
turns the closed one into Parquet, then deletes it; segments left by a crash are replayed at start.
`write(2)` happens on every record (the page cache survives `kill -9`); `fsync` happens in batches
(`fsync_interval`), which bounds what a power loss or kernel crash can take.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import fields
from pathlib import Path

from data_plane_agent.lake.records import PredictionRecord

log = logging.getLogger("mallard.agent.lake")

_FIELDS = [f.name for f in fields(PredictionRecord)]
SUFFIX = ".jsonl"


def encode(record: PredictionRecord) -> bytes:
    """One spool line: the record's fields as a JSON array, in dataclass order."""
    return json.dumps([getattr(record, name) for name in _FIELDS], separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> PredictionRecord:
    values = json.loads(line)
    if not isinstance(values, list) or len(values) > len(_FIELDS):
        raise ValueError("not a spooled prediction record")
    return PredictionRecord(**dict(zip(_FIELDS, values, strict=False)))


class Segment:
    """One spool file being appended to. Not thread-safe: the lake serialises calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.id = path.name[: -len(SUFFIX)]
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.size = os.fstat(self._fd).st_size
        self._unsynced = False

    def append(self, line: bytes) -> None:
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(line)
        self._unsynced = True

    def sync(self) -> None:
        if self._unsynced and self._fd >= 0:
            self._unsynced = False
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1


class Spool:
    """The directory of segments."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def new_segment(self) -> Segment:
        segment_id = f"{time.time_ns() // 1_000_000:013d}-{uuid.uuid4().hex[:12]}"
        return Segment(self.root / f"{segment_id}{SUFFIX}")

    def leftovers(self) -> list[Path]:
        """Segments on disk (from a previous run), oldest first."""
        return sorted(self.root.glob(f"*{SUFFIX}"))

    @staticmethod
    def read(path: Path) -> list[PredictionRecord]:
        """The records of a segment. A torn last line (the process died mid-write) is skipped."""
        records: list[PredictionRecord] = []
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    log.warning("lake spool %s: dropping a torn last line (%d bytes)", path.name, len(line))
                    break
                try:
                    records.append(decode(line))
                except (ValueError, TypeError) as exc:
                    log.warning("lake spool %s line %d is unreadable (%s); skipped", path.name, number, exc)
        return records
