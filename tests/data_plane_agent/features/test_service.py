"""The agent's FeatureService with a stream feature set: applying it starts a consumer of its Redis
Stream (real redis-server), events show up online, freshness reports the key count, and the
consumer comes back after the service restarts (the definitions live in the agent's registry)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from data_plane_agent.features import FeatureEngine, SqliteOnlineStore
from data_plane_agent.features.service import FeatureService
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore
from mallard.features import Aggregation, Entity, RedisStreamSource, StreamFeatureSet
from shared import features as contract
from shared.errors import InvalidInput
from tests.helpers.servers import wait_for

CARD_SPEND = StreamFeatureSet(
    "card_spend",
    entity=Entity("card", keys={"card_id": "int"}),
    stream=RedisStreamSource("payments"),
    timestamp="ts",
    aggregations=[
        Aggregation("amount", "sum", window=timedelta(hours=1)),
        Aggregation("amount", "count", window=timedelta(days=1)),
    ],
)


def service(root: Path, redis_url: str) -> FeatureService:
    engine = FeatureEngine(
        root / "home", LocalObjectStore(root / "store"), SqliteOnlineStore(root / "online.sqlite"), "ten_s", threads=1
    )
    return FeatureService(
        engine, outbox=Outbox(root / "outbox.db"), redis_url=redis_url, schedule_interval_seconds=3600
    )


def spec() -> dict[str, Any]:
    d = CARD_SPEND
    entry = {"project": "fraud", "name": d.name, "version": d.version, "kind": d.kind, "definition": d.to_dict()}
    return {"tenant_id": "ten_s", "definitions": [entry]}


def online(svc: FeatureService, card: int) -> dict[str, Any]:
    return svc.get_online("card_spend", [{"card_id": card}])[0]


def test_an_applied_stream_feature_set_is_consumed_and_comes_back_after_a_restart(
    tmp_path: Path, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete("payments")
    first = service(tmp_path, redis_url)
    first.start()
    try:
        first.apply(spec())
        now = time.time()
        for amount in (10.0, 2.5):
            client.xadd("payments", {"card_id": "7", "ts": str(now), "amount": str(amount)})
        wait_for(lambda: online(first, 7)["amount_sum_1h"] == 12.5, timeout=5, what="windowed sum online")
        assert online(first, 7)["amount_count_1d"] == 2
        with_stream = [p for t, p in _events(first) if t == contract.FRESHNESS_EVENT]
        assert with_stream and with_stream[0]["name"] == "card_spend"
        first.tick(datetime.now(UTC))
        reported = [p for t, p in _events(first) if t == contract.FRESHNESS_EVENT][-1]
        assert reported["online_keys"] == 1
        # Stream sets are kept up to date continuously; a materialize command is refused.
        with pytest.raises(InvalidInput, match="stream"):
            first.materialize({"job_id": "m1", "project": "fraud", "name": "card_spend", "version": 1})
    finally:
        first.shutdown()
        first.engine.close()
        first.outbox.close()
    second = service(tmp_path, redis_url)
    second.start()  # no apply: the registry remembers the definition and starts its consumer
    try:
        client.xadd("payments", {"card_id": "7", "ts": str(time.time()), "amount": "1"})
        wait_for(lambda: online(second, 7)["amount_sum_1h"] == 13.5, timeout=5, what="consumer after restart")
        assert online(second, 7)["amount_count_1d"] == 3
    finally:
        second.shutdown()
        second.engine.close()
        second.outbox.close()


def _events(svc: FeatureService) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, json.loads(e.payload_json)) for e in svc.outbox.unacked(limit=1000)]
