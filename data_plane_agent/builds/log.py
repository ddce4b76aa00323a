"""A build's full log: appended to a local file while the build runs (the data-plane API reads
it from there to follow), and copied to the object store every few seconds and at the end."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

from data_plane_agent.storage import ObjectStore, build_log_key

logger = logging.getLogger("mallard.agent.builds")


class BuildLog:
    """Thread-safe; writes are flushed to the file at once so followers see them."""

    def __init__(self, path: Path, *, store: ObjectStore | None, build_id: str) -> None:
        """`store=None` keeps the log a local file only (e.g. serving's environment preparation)."""
        self.path = path
        self.key = build_log_key(build_id)
        self._store = store
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "ab")  # noqa: SIM115  (closed in close())
        self._stored_size = -1
        self._closed = False

    def write(self, text: str) -> None:
        with self._lock:
            if self._closed:
                return
            self._handle.write(text.encode("utf-8", "replace"))
            self._handle.flush()

    def line(self, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        self.write(f"[{stamp}] {message}\n")

    def size(self) -> int:
        with self._lock:
            return self._handle.tell() if not self._closed else self.path.stat().st_size

    def sync_to_store(self) -> None:
        """Copy the log to the store if it grew since the last copy."""
        if self._store is None:
            return
        with self._lock:
            if not self._closed:
                self._handle.flush()
            size = self.path.stat().st_size if self.path.exists() else 0
            if size == self._stored_size:
                return
        self._store.put_file(self.key, self.path)
        with self._lock:
            self._stored_size = max(self._stored_size, size)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._handle.close()
        self.sync_to_store()


class LogSyncer:
    """One thread that copies every open build log to the store every `interval` seconds."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._logs: set[BuildLog] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="build-log-sync", daemon=True)
        self._thread.start()

    def add(self, log: BuildLog) -> None:
        with self._lock:
            self._logs.add(log)

    def remove(self, log: BuildLog) -> None:
        with self._lock:
            self._logs.discard(log)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                logs = list(self._logs)
            for log in logs:
                try:
                    log.sync_to_store()
                except Exception as exc:  # a store hiccup must not end the syncing; the next round retries
                    logger.warning("could not copy %s to the store: %s", log.key, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
