"""Engine-side micro-batching with a real replica of the toy model: requests that queue while a
call is in flight reach the replica as one call, and each is still answered, failed, timed out
and recorded on its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pytest

from data_plane_agent.serving import ServingEngine
from data_plane_agent.serving.engine import PredictionOutcome
from data_plane_agent.storage import LocalObjectStore
from shared.errors import ModelFailed, PredictionTimeout
from tests.data_plane_agent.serving.helpers import running_toy, until


async def _replica_stats(engine: ServingEngine) -> dict[str, object]:
    client = engine._deployments["dep_1"].replicas[0].client
    assert client is not None
    _, stats = await client.get_json("/stats")
    return stats


async def test_concurrent_requests_reach_the_replica_as_fewer_calls_each_answered_and_recorded(
    tmp_path: Path, store: LocalObjectStore
) -> None:
    async with running_toy(tmp_path, store, "bld_a", delay=0.05) as (engine, records):
        before = await _replica_stats(engine)

        async def one(i: int) -> list[float]:
            columns: dict[str, list[float]] = {"x": [float(i)] * (1 + i % 3)}
            if i % 4 == 3:
                columns["z"] = [0.0] * (1 + i % 3)  # another schema: sent in a call of its own kind
            outcome = await engine.predict("toy", pa.table(columns), request_id=f"r{i}")
            return [float(v) for v in outcome.outputs.column("y").to_pylist()]

        answers = await asyncio.gather(*(one(i) for i in range(40)))
        assert answers == [[2.0 * i] * (1 + i % 3) for i in range(40)]  # each got its own rows back
        after = await _replica_stats(engine)
        rows = sum(1 + i % 3 for i in range(40))
        assert after["rows"] == int(before["rows"]) + rows  # type: ignore[call-overload]
        calls = int(after["requests"]) - int(before["requests"])  # type: ignore[call-overload]
        assert calls <= 6, after  # the first alone, then one call per schema
        assert sorted(r.request_id for r in records) == sorted(f"r{i}" for i in range(40))
        assert all(r.status == "ok" for r in records)
        assert {r.request_id: r.rows for r in records} == {f"r{i}": 1 + i % 3 for i in range(40)}


async def test_a_bad_request_in_a_batch_fails_alone(tmp_path: Path, store: LocalObjectStore) -> None:
    async with running_toy(tmp_path, store, "bld_a", delay=0.05) as (engine, records):
        xs = [1.0, 2.0, 3.0, -1.0, 5.0, 6.0, 7.0, 8.0]  # -1 makes the toy model raise
        results = await asyncio.gather(
            *(engine.predict("toy", pa.table({"x": [x]}), request_id=f"r{x:g}") for x in xs), return_exceptions=True
        )
        for x, result in zip(xs, results, strict=True):
            if x == -1.0:
                assert isinstance(result, ModelFailed) and "x = -1 is not allowed" in result.message
            else:
                assert not isinstance(result, BaseException), result
                assert result.outputs.column("y").to_pylist() == [2 * x]
        status = {r.request_id: r.status for r in records}
        assert status == {f"r{x:g}": ("MODEL_ERROR" if x == -1.0 else "ok") for x in xs}


async def test_a_queued_request_keeps_its_own_timeout(tmp_path: Path, store: LocalObjectStore) -> None:
    async with running_toy(tmp_path, store, "bld_slow", delay=0.5) as (engine, records):
        first = asyncio.create_task(engine.predict("toy", pa.table({"x": [1.0]}), request_id="first", timeout_s=5))
        await asyncio.sleep(0)  # the first one is in flight: the next ones queue behind it
        hasty = asyncio.create_task(engine.predict("toy", pa.table({"x": [2.0]}), request_id="hasty", timeout_s=0.1))
        patient = asyncio.create_task(engine.predict("toy", pa.table({"x": [3.0]}), request_id="patient", timeout_s=5))
        with pytest.raises(PredictionTimeout) as timed_out:
            await hasty
        assert timed_out.value.details == {"timeout_s": 0.1}
        assert (await first).outputs.column("y").to_pylist() == [2.0]
        assert (await patient).outputs.column("y").to_pylist() == [6.0]
        assert {r.request_id: r.status for r in records} == {"first": "ok", "hasty": "TIMEOUT", "patient": "ok"}


async def test_requests_queued_when_a_deployment_is_deleted_are_still_answered(
    tmp_path: Path, store: LocalObjectStore
) -> None:
    async with running_toy(tmp_path, store, "bld_slow", delay=0.3) as (engine, records):

        def send(i: int) -> asyncio.Task[PredictionOutcome]:
            return asyncio.create_task(engine.predict("toy", pa.table({"x": [float(i)]}), request_id=f"r{i}"))

        batchers = engine._deployments["dep_1"]._batchers
        calls = [send(0)]
        await until(lambda: "default" in batchers and batchers["default"].calls, what="the first request in flight")
        calls += [send(i) for i in range(1, 6)]
        await until(lambda: len(batchers["default"]._queue) == 5, what="the next ones queued behind it")
        assert (await engine.delete("dep_1"))["deleted"] is True
        answers = [(await call).outputs.column("y").to_pylist() for call in calls]
        assert answers == [[2.0 * i] for i in range(6)]
        assert sorted(r.status for r in records) == ["ok"] * 6
