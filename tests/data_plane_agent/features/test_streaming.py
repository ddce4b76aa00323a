"""Streaming aggregations on a real redis-server: events pushed to a Redis Stream show up in the
online windowed values within a second, equal to a recomputation from the raw events, and a
restarted aggregator neither loses nor double-counts events."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis

from data_plane_agent.features.online import OnlineStore
from mallard.features import Aggregation, Entity, RedisStreamSource, StreamFeatureSet
from tests.data_plane_agent.features.conftest import make_engine
from tests.helpers.servers import wait_for

DRIVER = Entity("driver", keys={"driver_id": "int"})
HOUR = 3600.0
WINDOWS = {"1h": timedelta(hours=1), "1d": timedelta(days=1)}


def definition(stream: str, redis_url: str) -> StreamFeatureSet:
    aggregations = [Aggregation("amount", fn, WINDOWS["1h"]) for fn in ("count", "sum", "mean", "min", "max", "last")]
    aggregations += [Aggregation("amount", fn, WINDOWS["1d"]) for fn in ("count", "sum", "max")]
    return StreamFeatureSet(
        "payments",
        entity=DRIVER,
        stream=RedisStreamSource(stream, redis_url),
        timestamp="ts",
        aggregations=aggregations,
    )


def recompute(events: list[tuple[int, float, float]], driver: int, now: float) -> dict[str, Any]:
    """The expected window values, straight from the raw events (independent of the aggregator's code)."""
    out: dict[str, Any] = {}
    if not any(d == driver for d, _, _ in events):
        return {f"amount_{fn}_1h": None for fn in ("count", "sum", "mean", "min", "max", "last")}  # never seen
    for label, window in WINDOWS.items():
        inside = sorted((ts, amount) for d, ts, amount in events if d == driver and ts > now - window.total_seconds())
        amounts = [a for _, a in inside]
        out[f"amount_count_{label}"] = len(amounts)
        out[f"amount_sum_{label}"] = sum(amounts) if amounts else None
        out[f"amount_max_{label}"] = max(amounts) if amounts else None
        if label == "1h":
            out["amount_mean_1h"] = sum(amounts) / len(amounts) if amounts else None
            out["amount_min_1h"] = min(amounts) if amounts else None
            out["amount_last_1h"] = amounts[-1] if amounts else None
    return out


def close(a: dict[str, Any], b: dict[str, Any]) -> bool:
    for key, expected in b.items():
        got = a.get(key)
        if expected is None or isinstance(expected, int):
            if got != expected:
                return False
        elif got is None or abs(got - expected) > 1e-9 * max(1.0, abs(expected)):
            return False
    return True


def test_events_show_up_online_within_a_second_and_match_a_recomputation(
    tmp_path: Path, redis_url: str, online_store: OnlineStore
) -> None:
    stream = f"payments-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    engine = make_engine(tmp_path, online_store)
    engine.apply([definition(stream, redis_url)], project="p")
    now = time.time()
    events: list[tuple[int, float, float]] = []

    def push(driver: int, ts: float, amount: float, *, iso: bool = False) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}" if iso else repr(ts)
        client.xadd(stream, {"driver_id": str(driver), "ts": stamp, "amount": repr(amount)})
        events.append((driver, ts, amount))

    # History from before the aggregator started: inside 1h, inside 1d only, and outside every window.
    for driver in (1, 2):
        push(driver, now - 0.5 * HOUR, 10.0 * driver)
        push(driver, now - 5 * HOUR, 100.0)
        push(driver, now - 3 * 24 * HOUR, 1000.0)
    aggregator = engine.stream_aggregator("payments", project="p")
    aggregator.start()
    try:

        def online_matches(drivers: list[int]) -> bool:
            rows = engine.get_online("payments", [{"driver_id": d} for d in drivers], project="p")
            at = time.time()
            return all(close(row, recompute(events, d, at)) for d, row in zip(drivers, rows, strict=True))

        wait_for(lambda: online_matches([1, 2, 3]), timeout=10, what="history aggregated")
        # New events: visible within a second of being pushed, with every window value recomputed.
        push(1, now - 0.25 * HOUR, 7.5)
        push(3, time.time(), 2.25, iso=True)
        push(1, time.time(), -3.0)
        pushed = time.monotonic()
        wait_for(lambda: online_matches([1, 2, 3]), timeout=1.0, what="new events online within a second")
        assert time.monotonic() - pushed <= 1.0
        row = engine.get_online("payments", [{"driver_id": 1}], project="p")[0]
        assert row["amount_count_1h"] == 3 and row["amount_count_1d"] == 4 and row["amount_last_1h"] == -3.0
        # A malformed event is skipped; the stream keeps flowing.
        client.xadd(stream, {"driver_id": "not-a-number", "ts": repr(time.time()), "amount": "1"})
        push(2, time.time(), 5.0)
        wait_for(lambda: online_matches([1, 2, 3]), timeout=5, what="events after a malformed one")
        assert aggregator.rejected == 1
    finally:
        aggregator.stop()
    # Events pushed while stopped are picked up by a new aggregator, without counting the old ones twice.
    push(2, time.time(), 11.0)
    push(4, time.time(), 1.5)
    restarted = engine.stream_aggregator("payments", project="p")
    restarted.start()
    try:
        wait_for(lambda: online_matches([1, 2, 3, 4]), timeout=10, what="aggregates after a restart")
        assert engine.get_online("payments", [{"driver_id": 2}], project="p")[0]["amount_count_1d"] == 4
    finally:
        restarted.stop()
    client.close()
