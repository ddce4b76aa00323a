"""Batch and streaming deployments through the real serving engine (replica processes of the toy
model, y = 2x), and realtime predictions recorded in the real lake: what a user deploys and sees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from data_plane_agent.lake import InferenceLake, LakeQuery, MinuteMetrics
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore
from shared.serving import MetricsPayload
from tests.data_plane_agent.serving.helpers import apply_spec, state_of, statuses, toy_artifact, toy_engine, until
from tests.data_plane_agent.serving.helpers import variation as make_variation
from tests.helpers.servers import redis_server


def _engine_setup(tmp_path: Path) -> tuple[LocalObjectStore, Outbox, str]:
    store = LocalObjectStore(tmp_path / "store")
    outbox = Outbox(tmp_path / "home" / "state.db")
    return store, outbox, toy_artifact(store, tmp_path, "bld_toy")


async def test_a_batch_deployment_scores_every_row_and_succeeds(tmp_path: Path) -> None:
    store, outbox, digest = _engine_setup(tmp_path)
    ids = np.arange(25_000, dtype=np.int64)
    pq.write_table(pa.table({"row_id": ids, "x": ids / 10.0}), tmp_path / "in.parquet", row_group_size=4_000)
    engine, _records = toy_engine(tmp_path / "home", store, outbox)
    await engine.start()
    try:
        spec = apply_spec(
            "dep_batch",
            [make_variation("default", "bld_toy", digest)],
            kind="batch",
            batch={"input": str(tmp_path / "in.parquet"), "output": str(tmp_path / "out"), "batch_rows": 5_000},
        )
        await engine.apply(spec)
        await until(lambda: state_of(engine, "dep_batch") in ("SUCCEEDED", "FAILED"), timeout=120, what="the job")
        reported = statuses(outbox, "dep_batch")
        assert state_of(engine, "dep_batch") == "SUCCEEDED", reported[-3:]
    finally:
        await engine.shutdown(10)
        outbox.close()
    scored = ds.dataset(tmp_path / "out").to_table()
    assert scored.column_names == ["row_id", "x", "y"] and scored.num_rows == 25_000
    assert pc.count_distinct(scored["row_id"]).as_py() == 25_000
    assert pc.all(pc.equal(scored["y"], pc.multiply(scored["x"], 2.0))).as_py()
    progress = [s for s in reported if "rows_done" in s]
    assert progress[-1]["rows_done"] == progress[-1]["rows_total"] == 25_000


async def test_a_streaming_deployment_answers_every_message(tmp_path: Path) -> None:
    import redis

    store, outbox, digest = _engine_setup(tmp_path)
    with redis_server() as url:
        client: Any = redis.Redis.from_url(url, decode_responses=True)
        sent = [client.xadd("in", {"data": json.dumps({"x": float(i)})}) for i in range(500)]
        engine, _records = toy_engine(tmp_path / "home", store, outbox)
        await engine.start()
        try:
            streams = {"redis_url": url, "input_stream": "in", "output_stream": "out", "group": "g"}
            await engine.apply(
                apply_spec(
                    "dep_stream", [make_variation("default", "bld_toy", digest)], kind="streaming", streaming=streams
                )
            )
            await until(lambda: client.xlen("out") >= 500, timeout=120, what="500 answers")
            await until(
                lambda: any(s.get("lag") == 0 and s.get("rows_done") == 500 for s in statuses(outbox, "dep_stream")),
                timeout=30,
                what="a status reporting lag 0",
            )
        finally:
            await engine.shutdown(10)
            outbox.close()
        answers = {fields["source_id"]: json.loads(fields["data"]) for _id, fields in client.xrange("out")}
        assert answers == {entry_id: {"y": 2.0 * i} for i, entry_id in enumerate(sent)}
        assert client.xinfo_groups("in")[0]["pending"] == 0


async def test_realtime_predictions_are_in_the_lake_and_the_aggregates(tmp_path: Path) -> None:
    store, outbox, digest = _engine_setup(tmp_path)
    metrics: list[MetricsPayload] = []
    lake = InferenceLake(store, tmp_path / "spool", flush_interval=3600, metrics=MinuteMetrics(metrics.append))
    lake.start()
    engine, _records = toy_engine(tmp_path / "home", store, outbox)
    engine.recorder = lake.record
    lake.logging_enabled = engine.logging_enabled
    await engine.start()
    try:
        await engine.apply(apply_spec("dep_rt", [make_variation("default", "bld_toy", digest)]))
        await until(lambda: state_of(engine, "dep_rt") == "RUNNING", timeout=120, what="a ready replica")
        for i in range(20):
            await engine.predict("toy", pa.table({"x": [float(i), 0.5]}), request_id=f"req-{i}")
    finally:
        await engine.shutdown(10)
        outbox.close()
    lake.close()
    rows = (
        LakeQuery(store)
        .run(
            "SELECT request_id, variation, build_id, status, rows, inputs_json, outputs_json FROM predictions "
            "WHERE model = 'toy' ORDER BY timestamp, request_id"
        )
        .rows
    )
    assert len(rows) == 20
    assert rows[3][:5] == ["req-3", "default", "bld_toy", "ok", 2]
    assert json.loads(rows[3][5]) == [{"x": 3.0}, {"x": 0.5}]
    assert json.loads(rows[3][6]) == [{"y": 6.0}, {"y": 1.0}]
    assert sum(m["count"] for m in metrics) == 20 and all(m["errors"] == 0 for m in metrics)
