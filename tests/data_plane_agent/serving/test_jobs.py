"""A batch deployment through the engine: replicas start, the job scores the input through them,
the replicas stop, SUCCEEDED is reported and remembered across an engine restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore
from tests.data_plane_agent.serving.helpers import apply_spec, state_of, statuses, toy_artifact, toy_engine, until
from tests.data_plane_agent.serving.helpers import variation as variation_spec


async def test_a_batch_deployment_scores_its_input_then_stops_its_replicas(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox
) -> None:
    digest = toy_artifact(store, tmp_path, "bld_a")
    source = tmp_path / "input.parquet"
    pq.write_table(pa.table({"x": [float(i) for i in range(5000)]}), source)
    output = tmp_path / "scored"
    spec = apply_spec(
        "dep_batch",
        [variation_spec("default", "bld_a", digest, replicas=2)],
        kind="batch",
        batch={"input": str(source), "output": str(output), "batch_rows": 500},
    )
    engine, records = toy_engine(tmp_path / "home", store, outbox)
    await engine.start()
    try:
        await engine.apply(spec)
        finished = ("SUCCEEDED", "FAILED")
        await until(lambda: _last_state(outbox) in finished, timeout=120, what="the batch job to finish")
        final = statuses(outbox, "dep_batch")[-1]
        assert final["state"] == "SUCCEEDED", final
        assert final["replicas"] == []  # its replicas are stopped
        assert any(p.get("rows_done") == 5000 and p.get("rows_total") == 5000 for p in statuses(outbox, "dep_batch"))

        scored = pq.read_table(output).sort_by("x")
        assert scored.num_rows == 5000
        assert scored.column("y").to_pylist() == [2.0 * i for i in range(5000)]
        assert records == []  # batch rows are the job's output, not per-request lake rows
        assert engine.deployments()[0]["state"] == "SUCCEEDED"
    finally:
        await engine.shutdown(5)

    again, _ = toy_engine(tmp_path / "home", store, None)
    await again.start()
    try:
        assert again.deployments() == []  # a finished batch job is not run again after a restart
        assert state_of(again, "dep_batch") is None
    finally:
        await again.shutdown(5)


def _last_state(outbox: Outbox, deployment_id: str = "dep_batch") -> str | None:
    reported = statuses(outbox, deployment_id)
    return reported[-1]["state"] if reported else None


async def test_a_streaming_deployment_answers_its_stream_through_the_replicas_until_deleted(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox
) -> None:
    import redis.asyncio as aioredis

    from tests.helpers.servers import redis_server

    digest = toy_artifact(store, tmp_path, "bld_a")
    with redis_server() as url:
        client = aioredis.from_url(url, decode_responses=True)
        for i in range(300):
            await client.xadd("in", {"x": str(float(i))})
        spec = apply_spec(
            "dep_stream",
            [variation_spec("default", "bld_a", digest)],
            kind="streaming",
            streaming={"redis_url": url, "input_stream": "in", "output_stream": "out", "group": "scorers"},
        )
        engine, _ = toy_engine(tmp_path / "home", store, outbox)
        await engine.start()
        try:
            await engine.apply(spec)

            async def answered() -> int:
                return int(await client.xlen("out"))

            deadline = asyncio.get_running_loop().time() + 60
            while await answered() < 300:
                assert asyncio.get_running_loop().time() < deadline, "the stream was not answered in time"
                await asyncio.sleep(0.1)
            entries: list[tuple[str, dict[str, str]]] = await client.xrange("out")  # type: ignore[assignment]
            ys = sorted(json.loads(fields["data"])["y"] for _id, fields in entries)
            assert ys == [2.0 * i for i in range(300)]

            await engine.delete("dep_stream")
            assert _last_state(outbox, "dep_stream") == "STOPPED"
            assert statuses(outbox, "dep_stream")[-1]["replicas"] == []
        finally:
            await engine.shutdown(5)
            await client.aclose()
