"""Streaming feature sets: sliding-window aggregations over a Redis Stream, kept current online.

One `StreamAggregator` per stream feature set reads the stream through a consumer group, keeps
each entity's events of the longest window in memory, and after every batch (and every
`refresh` seconds, as events age out of windows) writes the current window values of the touched
keys to the online store. A window `w` at time `now` holds the events with `now - w < ts`.
count is the number of events; sum/mean/min/max over the column's values; last is the value of
the latest event; an empty window gives count 0 and None for the others.

On start the in-memory windows are rebuilt from the stream itself (entries already delivered to
the group within the longest window, `XRANGE`), so a restart neither loses nor double-counts
events. Run one aggregator per stream feature set: the group's position is shared, so two
would each see only part of the events.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import redis

from data_plane_agent.features.online import OnlineStore, OnlineTable, entity_key
from mallard.features import Aggregation, StreamFeatureSet

log = logging.getLogger(__name__)
GROUP = "mallard-features"


def parse_timestamp(raw: str) -> float:
    """Epoch seconds from an event's timestamp field: a number (seconds) or ISO 8601 (naive = UTC)."""
    try:
        return float(raw)
    except ValueError:
        value = datetime.fromisoformat(raw)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()


def aggregate(agg: Aggregation, events: list[tuple[float, dict[str, float]]], now: float) -> float | int | None:
    """The value of one aggregation over `events` (sorted by time) at `now`; the reference semantics."""
    start = now - agg.window.total_seconds()
    inside = [(ts, values) for ts, values in events if ts > start]
    if agg.function == "count":
        return len(inside)
    values = [v[agg.column] for _, v in inside if agg.column in v]
    if not values:
        return None
    if agg.function == "sum":
        return float(sum(values))
    if agg.function == "mean":
        return float(sum(values) / len(values))
    if agg.function == "min":
        return float(min(values))
    if agg.function == "max":
        return float(max(values))
    return float(values[-1])


@dataclass
class _KeyState:
    events: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    next_change: float = float("inf")


class StreamAggregator:
    """Consumes a stream feature set's Redis Stream and keeps its window values online."""

    def __init__(
        self,
        fs: StreamFeatureSet,
        redis_url: str,
        online: OnlineStore,
        table: OnlineTable,
        *,
        consumer: str = "agent",
        refresh: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fs = fs
        self.online = online
        self.table = table
        self.stream = fs.stream.stream
        self.consumer = consumer
        self.refresh = refresh
        self.clock = clock
        self.redis = redis.Redis.from_url(redis_url)
        self.max_window = max(a.window.total_seconds() for a in fs.aggregations)
        self.windows = sorted({a.window.total_seconds() for a in fs.aggregations})
        self.columns = {a.column for a in fs.aggregations}
        self.keys: dict[str, tuple[dict[str, Any], _KeyState]] = {}
        self.processed = 0
        self.rejected = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_refresh = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Create the consumer group if needed, rebuild windows from the stream, and consume in a thread."""
        if self._thread is not None:
            return
        self.prepare()
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.fs.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop consuming (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.redis.close()

    def prepare(self) -> None:
        """Create the group (from the stream's start) and load the delivered events of the longest window."""
        try:
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        info: Any = self.redis.xinfo_groups(self.stream)
        groups = {g["name"].decode(): g for g in info}
        last = groups[GROUP]["last-delivered-id"]
        last_id = last.decode() if isinstance(last, bytes) else str(last)
        if last_id != "0-0":
            since = int((self.clock() - self.max_window) * 1000)
            entries: Any = self.redis.xrange(self.stream, min=f"{max(since, 0)}-0", max=last_id)
            self._apply([(eid, fields) for eid, fields in entries], write=True)
            pending = [eid for eid, _ in entries]
            for start in range(0, len(pending), 1000):
                self.redis.xack(self.stream, GROUP, *pending[start : start + 1000])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.process_once(block_ms=100)
            except redis.RedisError as exc:
                log.warning("stream %s: %s; retrying", self.stream, exc)
                self._stop.wait(1.0)
            except Exception:
                log.exception("stream %s: aggregation failed; retrying", self.stream)
                self._stop.wait(1.0)

    def process_once(self, block_ms: int = 100) -> int:
        """Read one batch of new events, update windows and the online store, ack; returns events read."""
        reply: Any = self.redis.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=5000, block=block_ms)
        count = 0
        for _stream, entries in reply or []:
            self._apply(entries, write=True)
            ids = [eid for eid, _ in entries]
            if ids:
                self.redis.xack(self.stream, GROUP, *ids)
            count += len(ids)
        now = self.clock()
        if now - self._last_refresh >= self.refresh:
            self._last_refresh = now
            due = [k for k, (_, state) in self.keys.items() if state.next_change <= now]
            self._write(due, now)
        return count

    # -- windows -----------------------------------------------------------------------------

    def _apply(self, entries: list[tuple[Any, dict[bytes, bytes]]], *, write: bool) -> None:
        touched: set[str] = set()
        for _eid, raw in entries:
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            try:
                key_values = {k: fields[k] for k in self.fs.entity.keys}
                key = entity_key(self.table, key_values)
                ts = parse_timestamp(fields[self.fs.timestamp])
                values = {c: float(fields[c]) for c in self.columns if fields.get(c, "") != ""}
            except (KeyError, ValueError) as exc:
                self.rejected += 1
                log.warning("stream %s: skipped a malformed event (%s)", self.stream, exc)
                continue
            typed = {k: int(v) if self.fs.entity.keys[k] == "int" else v for k, v in key_values.items()}
            _, state = self.keys.setdefault(key, (typed, _KeyState()))
            bisect.insort(state.events, (ts, values), key=lambda e: e[0])
            touched.add(key)
            self.processed += 1
        if write and touched:
            self._write(sorted(touched), self.clock())

    def _write(self, keys: list[str], now: float) -> None:
        if not keys:
            return
        horizon = now - self.max_window
        columns: dict[str, list[Any]] = {a.name: [] for a in self.fs.aggregations}
        written: list[str] = []
        for key in keys:
            _, state = self.keys[key]
            cut = bisect.bisect_right(state.events, horizon, key=lambda e: e[0])
            del state.events[:cut]
            for agg in self.fs.aggregations:
                columns[agg.name].append(aggregate(agg, state.events, now))
            state.next_change = min(
                (ts + w for ts, _ in state.events for w in self.windows if ts + w > now), default=float("inf")
            )
            written.append(key)
            if not state.events:
                del self.keys[key]
        stamp = int(now * 1_000_000)
        rows = {
            "entity_key": pa.array(written, pa.string()),
            "event_ts": pa.array([stamp] * len(written), pa.int64()),
            "created_ts": pa.array([None] * len(written), pa.int64()),
        }
        for agg in self.fs.aggregations:
            rows[agg.name] = pa.array(columns[agg.name], pa.int64() if agg.type == "int" else pa.float64())
        self.online.write_batch(self.table, pa.table(rows))
