"""Per-minute serving aggregates (count, errors, latency percentiles) per model variation.

Only these aggregates cross to the control plane (`serving.metrics` events through the outbox);
they are computed for every prediction, whether or not the model's lake logging is on. A minute
is the one in which the prediction was recorded (its answer completed), so a closed minute never
gets late rows. Closed minutes are emitted by `tick()`; `tick(final=True)` emits the open one too
(at shutdown), so after a restart a minute may arrive in two events whose counts add up.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from data_plane_agent.lake.records import PredictionRecord
from shared.serving import MetricsPayload

_Key = tuple[int, str, str, str, str]  # minute, deployment, model, variation, build


@dataclass
class _Bucket:
    count: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class MinuteMetrics:
    """Thread-safe accumulator; `emit` receives one payload per closed minute and variation."""

    def __init__(self, emit: Callable[[MetricsPayload], None], *, clock: Callable[[], float] = time.time) -> None:
        self._emit = emit
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[_Key, _Bucket] = {}

    def observe(self, record: PredictionRecord) -> None:
        minute = int(self._clock() // 60)
        key = (minute, record.deployment_id, record.model, record.variation, record.build_id)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket()
            bucket.count += 1
            if record.status != "ok":
                bucket.errors += 1
            bucket.latencies.append(record.latency_ms)

    def tick(self, *, final: bool = False) -> int:
        """Emit every closed minute (every minute when `final`); returns how many payloads were emitted."""
        current = int(self._clock() // 60)
        with self._lock:
            due = sorted(k for k in self._buckets if final or k[0] < current)
            taken = [(k, self._buckets.pop(k)) for k in due]
        for (minute, deployment_id, model, variation, build_id), bucket in taken:
            latencies = sorted(bucket.latencies)
            self._emit(
                MetricsPayload(
                    deployment_id=deployment_id,
                    model=model,
                    variation=variation,
                    build_id=build_id,
                    minute=datetime.fromtimestamp(minute * 60, tz=UTC).isoformat(),
                    count=bucket.count,
                    errors=bucket.errors,
                    p50_ms=round(percentile(latencies, 0.50), 3),
                    p95_ms=round(percentile(latencies, 0.95), 3),
                    p99_ms=round(percentile(latencies, 0.99), 3),
                )
            )
        return len(taken)
