"""The serving engine with real replica processes of a toy model: deploy, predict, report, errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pyarrow as pa
import pytest

from data_plane_agent.link.outbox import Outbox
from data_plane_agent.serving import deployment as deployment_module
from data_plane_agent.storage import LocalObjectStore, artifact_key
from shared.errors import InvalidInput, ModelFailed, NotFound, PredictionTimeout, Unavailable
from tests.data_plane_agent.serving.helpers import (
    apply_spec,
    running_toy,
    state_of,
    statuses,
    toy_artifact,
    toy_engine,
    until,
    variation,
)


async def test_a_deployed_model_predicts_reports_running_and_records_each_answer(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox
) -> None:
    digest = toy_artifact(store, tmp_path, "bld_a")
    engine, records = toy_engine(tmp_path / "home", store, outbox)
    await engine.start()
    try:
        answer = await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)]))
        assert answer["applied"] is True
        await until(lambda: state_of(engine, "dep_1") == "RUNNING", what="RUNNING")

        outcome = await engine.predict("toy", pa.table({"x": [1.0, 2.5]}), request_id="req-1")
        assert outcome.outputs.column("y").to_pylist() == [2.0, 5.0]
        assert (outcome.deployment_id, outcome.variation, outcome.build_id) == ("dep_1", "default", "bld_a")
        assert [f.name for f in engine.schema("toy").inputs] == ["x"]
        assert engine.logging_enabled("toy") is True

        [record] = records
        assert (record.request_id, record.status, record.shadow, record.rows) == ("req-1", "ok", False, 2)
        assert record.outputs_json is not None
        assert json.loads(record.inputs_json) == [{"x": 1.0}, {"x": 2.5}]
        assert json.loads(record.outputs_json) == [{"y": 2.0}, {"y": 5.0}]

        reported = statuses(outbox, "dep_1")
        assert reported[-1]["state"] == "RUNNING" and reported[-1]["revision"] == 1
        assert reported[-1]["replicas"] == [{"variation": "default", "build_id": "bld_a", "ready": True, "restarts": 0}]
        assert all(len(json_text) < 2000 for json_text in map(str, reported))  # metadata only, no rows

        # The same revision again changes nothing; an older one is ignored.
        assert (await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)])))["applied"]
        older = await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)], revision=0))
        assert older["applied"] is False

        with pytest.raises(NotFound) as missing:
            await engine.predict("nope", pa.table({"x": [1.0]}), request_id="r")
        assert missing.value.field == "model"
        with pytest.raises(ModelFailed, match="x = -1 is not allowed"):
            await engine.predict("toy", pa.table({"x": [-1.0]}), request_id="req-bad")
        assert records[-1].status == "MODEL_ERROR" and records[-1].error and "x = -1" in records[-1].error
        # The replica is still healthy after a failing predict.
        outcome = await engine.predict("toy", pa.table({"x": [3.0]}), request_id="req-2")
        assert outcome.outputs.column("y").to_pylist() == [6.0]

        deleted = await engine.delete("dep_1")
        assert deleted["deleted"] is True
        assert statuses(outbox, "dep_1")[-1]["state"] == "STOPPED"
        with pytest.raises(NotFound):
            await engine.predict("toy", pa.table({"x": [1.0]}), request_id="r")
        # A late redelivery of the deleted revision deploys nothing; a newer revision does.
        late = await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)]))
        assert late["applied"] is False and late["state"] == "STOPPED" and engine.deployments() == []
        await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)], revision=2))
        await until(lambda: state_of(engine, "dep_1") == "RUNNING", what="redeployed")
    finally:
        await engine.shutdown(5)


async def test_a_spec_with_problems_is_refused_naming_the_field(tmp_path: Path, store: LocalObjectStore) -> None:
    engine, _ = toy_engine(tmp_path / "home", store, None)
    await engine.start()
    try:
        bad = apply_spec("dep_1", [variation("default", "bld_a", "md5:abc")])
        with pytest.raises(InvalidInput, match=r"variations\[0\].artifact_digest must be a sha256 digest") as refused:
            await engine.apply(bad)
        assert refused.value.field == "variations[0].artifact_digest"
        assert engine.deployments() == []
    finally:
        await engine.shutdown(5)


async def test_a_slow_prediction_times_out_and_the_next_one_succeeds(tmp_path: Path, store: LocalObjectStore) -> None:
    async with running_toy(tmp_path, store, "bld_slow", delay=0.5) as (engine, records):
        with pytest.raises(PredictionTimeout):
            await engine.predict("toy", pa.table({"x": [1.0]}), request_id="r1", timeout_s=0.1)
        assert records[-1].status == "TIMEOUT"
        outcome = await engine.predict("toy", pa.table({"x": [1.0]}), request_id="r2", timeout_s=5)
        assert outcome.outputs.column("y").to_pylist() == [2.0]


async def test_a_replica_stuck_in_a_predict_is_restarted_once_its_request_timed_out(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox
) -> None:
    digest = toy_artifact(store, tmp_path, "bld_a")
    engine, _ = toy_engine(tmp_path / "home", store, outbox, liveness_interval=0.3, liveness_timeout=0.5)
    await engine.start()
    try:
        await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)]))
        await until(lambda: state_of(engine, "dep_1") == "RUNNING")
        with pytest.raises(PredictionTimeout):
            await engine.predict("toy", pa.table({"x": [-2.0]}), request_id="hangs", timeout_s=0.5)
        replica = engine._deployments["dep_1"].replicas[0]
        await until(lambda: replica.restarts == 1 and replica.ready, what="the stuck replica replaced")
        outcome = await engine.predict("toy", pa.table({"x": [1.0]}), request_id="after")
        assert outcome.outputs.column("y").to_pylist() == [2.0]
        assert any(r["restarts"] == 1 for r in statuses(outbox, "dep_1")[-1]["replicas"])
    finally:
        await engine.shutdown(5)


async def test_an_artifact_missing_from_the_store_fails_the_deployment_until_it_is_there(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deployment_module, "RETRY_INITIAL_SECONDS", 0.3)
    digest = toy_artifact(store, tmp_path, "bld_late")
    kept = tmp_path / "kept.tar.gz"
    store.get_to_file(artifact_key(digest), kept)
    store.delete(artifact_key(digest))
    engine, _ = toy_engine(tmp_path / "home", store, outbox)
    await engine.start()
    try:
        await engine.apply(apply_spec("dep_1", [variation("default", "bld_late", digest)]))
        await until(lambda: state_of(engine, "dep_1") == "FAILED")
        assert "is not in the data-plane store" in statuses(outbox, "dep_1")[-1]["message"]
        with pytest.raises(Unavailable):
            await engine.predict("toy", pa.table({"x": [1.0]}), request_id="r")

        store.put_file(artifact_key(digest), kept)  # e.g. the store was unreachable for a while
        await until(lambda: state_of(engine, "dep_1") == "RUNNING", what="the retried deployment")
        outcome = await engine.predict("toy", pa.table({"x": [1.0]}), request_id="r")
        assert outcome.outputs.column("y").to_pylist() == [2.0]
    finally:
        await engine.shutdown(5)


async def test_concurrent_requests_are_micro_batched_by_the_engine(tmp_path: Path, store: LocalObjectStore) -> None:
    digest = toy_artifact(store, tmp_path, "bld_a", delay=0.02)
    engine, _ = toy_engine(tmp_path / "home", store, None)
    await engine.start()
    try:
        await engine.apply(apply_spec("dep_1", [variation("default", "bld_a", digest)]))
        await until(lambda: state_of(engine, "dep_1") == "RUNNING")

        async def one(i: int) -> float:
            outcome = await engine.predict("toy", pa.table({"x": [float(i)]}), request_id=f"r{i}")
            return float(outcome.outputs.column("y")[0].as_py())

        answers = await asyncio.gather(*(one(i) for i in range(64)))
        assert answers == [2.0 * i for i in range(64)]  # each request got its own rows back
        replica = engine._deployments["dep_1"].replicas[0]
        assert replica.client is not None
        _, stats = await replica.client.get_json("/stats")
        assert stats["rows"] == 64
        # the engine queued them while a call was in flight and sent them together
        assert isinstance(stats["requests"], int) and stats["requests"] < 32, stats
        assert isinstance(stats["predict_calls"], int) and stats["predict_calls"] < 32, stats
    finally:
        await engine.shutdown(5)
