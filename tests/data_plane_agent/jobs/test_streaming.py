"""Streaming jobs on a real redis-server: 10,000 messages with the consumer killed -9 mid-way,
every message predicted at least once and none lost; entries of a dead consumer taken over;
refused and unreadable entries answered with an error instead of blocking the stream; lag reported."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from data_plane_agent.jobs.streaming import StreamConsumer
from shared.serving import StatusPayload
from tests.data_plane_agent.jobs.conftest import start_job
from tests.data_plane_agent.jobs.job_proc import predict
from tests.helpers.servers import redis_server, wait_for

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def streaming_spec(redis_url: str, *, deployment: str = "dep_stream") -> dict:
    return {
        "deployment_id": deployment,
        "kind": "streaming",
        "revision": 3,
        "streaming": {"redis_url": redis_url, "input_stream": "events", "output_stream": "scores", "group": "scorers"},
    }


def connect(url: str) -> Any:
    return redis.Redis.from_url(url, decode_responses=True)


def produce(client: Any, count: int, *, start: int = 0) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + count):
        pipe.xadd("events", {"data": json.dumps({"row_id": i, "f0": float(i), "f1": 1.0})})
    return [str(x) for x in pipe.execute()]


def outputs(client: Any) -> list[dict[str, str]]:
    return [fields for _id, fields in client.xrange("scores")]


@pytest.mark.slow
def test_ten_thousand_messages_survive_a_consumer_killed_mid_way(redis_url: str, tmp_path: Path) -> None:
    client = connect(redis_url)
    ids = produce(client, 10_000)
    spec = streaming_spec(redis_url)

    first = start_job(spec, tmp_path / "home", tmp_path / "store", delay_ms=80)
    wait_for(lambda: client.xlen("scores") >= 2_000, timeout=120, what="2,000 answers before the kill")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    answered_at_kill = client.xlen("scores")
    assert answered_at_kill < 10_000
    group = client.xinfo_groups("events")[0]
    assert group["lag"] + group["pending"] > 0  # work was left

    second = start_job(spec, tmp_path / "home", tmp_path / "store")
    wait_for(lambda: {o["source_id"] for o in outputs(client)} >= set(ids), timeout=120, what="every message answered")
    wait_for(lambda: client.xinfo_groups("events")[0]["pending"] == 0, timeout=30, what="every message acked")
    second.proc.send_signal(signal.SIGTERM)
    statuses = [line for line in second.lines() if "lag" in line]

    answers = outputs(client)
    by_source: dict[str, list[dict[str, str]]] = {}
    for answer in answers:
        by_source.setdefault(answer["source_id"], []).append(answer)
    assert set(by_source) == set(ids)  # none lost
    for source_id, row in zip(ids[:3] + ids[-3:], [0, 1, 2, 9_997, 9_998, 9_999], strict=True):
        assert json.loads(by_source[source_id][0]["data"]) == {"score": row + 1.0}
    assert all("error" not in a for a in answers)
    assert len(answers) == 10_000  # output and ack are committed together: nothing was written twice here
    assert statuses[0]["lag"] > 0  # the restarted consumer reported the backlog it found...
    assert statuses[-1]["lag"] == 0 and statuses[-1]["state"] == "RUNNING"  # ...and that it caught up
    assert statuses[-1]["revision"] == 3
    assert statuses[-1]["rows_done"] == 10_000 - answered_at_kill


def _consume_until(
    spec: dict, done: Callable[[], bool], *, claim_idle_ms: int = 60_000
) -> tuple[StreamConsumer, list[StatusPayload]]:
    reports: list[StatusPayload] = []

    async def main() -> StreamConsumer:
        stop = asyncio.Event()
        consumer = StreamConsumer(spec, predict, reports.append, stop, claim_idle_ms=claim_idle_ms)  # type: ignore[arg-type]
        task = asyncio.create_task(consumer.run())
        deadline = asyncio.get_running_loop().time() + 30
        while not await asyncio.to_thread(done):
            assert asyncio.get_running_loop().time() < deadline, "the consumer did not finish in time"
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
        stop.set()
        await task
        return consumer

    return asyncio.run(main()), reports


def test_entries_a_dead_consumer_never_acked_are_taken_over(redis_url: str) -> None:
    client = connect(redis_url)
    ids = produce(client, 300)
    client.xgroup_create("events", "scorers", id="0")
    client.xreadgroup("scorers", "crashed-replica", {"events": ">"}, count=120)  # delivered, then it died
    spec = streaming_spec(redis_url)
    consumer, _ = _consume_until(spec, lambda: {o["source_id"] for o in outputs(client)} >= set(ids), claim_idle_ms=200)
    assert consumer.processed == 300
    assert client.xinfo_groups("events")[0]["pending"] == 0
    assert sorted(o["source_id"] for o in outputs(client)) == sorted(ids)


def test_refused_and_unreadable_entries_get_error_answers_and_do_not_block_the_stream(redis_url: str) -> None:
    client = connect(redis_url)
    good = produce(client, 5)
    bad = client.xadd("events", {"data": json.dumps({"row_id": 5, "f0": 1.0, "f1": 1.0, "fail": True})})
    junk = client.xadd("events", {"data": "{not json"})
    flat = client.xadd("events", {"row_id": "7", "f0": "2.5", "f1": "0.5"})  # one field per column
    consumer, reports = _consume_until(streaming_spec(redis_url), lambda: client.xlen("scores") >= 8)
    answers = {o["source_id"]: o for o in outputs(client)}
    assert set(answers) == {*good, bad, junk, flat}
    assert "fail=true" in answers[bad]["error"] and "unreadable entry" in answers[junk]["error"]
    assert json.loads(answers[flat]["data"]) == {"score": 3.0}
    assert all("data" in answers[g] for g in good)
    assert consumer.failed == 2 and client.xinfo_groups("events")[0]["pending"] == 0
    assert reports[-1]["rows_done"] == 8 and reports[-1]["lag"] == 0


def test_a_streaming_spec_without_streams_is_refused_naming_the_field(redis_url: str) -> None:
    from shared.errors import InvalidInput

    spec = streaming_spec(redis_url)
    spec["streaming"]["output_stream"] = ""
    with pytest.raises(InvalidInput) as refused:
        StreamConsumer(spec, predict, lambda s: None, asyncio.Event())  # type: ignore[arg-type]
    assert refused.value.field == "streaming.output_stream"
