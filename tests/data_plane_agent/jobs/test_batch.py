"""Batch jobs: a million rows in bounded memory, resumable after kill -9 without duplicated or
missing rows, S3 in and out, and clear errors for bad input."""

from __future__ import annotations

import asyncio
import json
import math
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from data_plane_agent.jobs import run_job
from data_plane_agent.storage import LocalObjectStore
from data_plane_agent.storage.s3 import S3ObjectStore
from shared.errors import InvalidInput, ModelFailed
from shared.serving import StatusPayload
from tests.data_plane_agent.jobs.conftest import FEATURES, expected_score, start_job, write_rows
from tests.data_plane_agent.jobs.job_proc import predict
from tests.data_plane_agent.storage.s3_server import S3Server
from tests.helpers.servers import wait_for

DECODED_INPUT_MIB = 1_000_000 * (FEATURES + 1) * 8 / 2**20  # what holding the whole input would take


def batch_spec(input_: str, output: str, *, batch_rows: int = 7_000, deployment: str = "dep_batch") -> dict:
    return {
        "deployment_id": deployment,
        "kind": "batch",
        "revision": 1,
        "batch": {"input": input_, "output": output, "batch_rows": batch_rows},
    }


def check_output(out: Path | str, rows: int, *, filesystem: object = None) -> pa.Table:
    table = ds.dataset(out, format="parquet", filesystem=filesystem).to_table(columns=["row_id", "f0", "score"])
    assert table.num_rows == rows
    assert pc.count_distinct(table["row_id"]).as_py() == rows  # no duplicates...
    assert pc.min_max(table["row_id"]).as_py() == {"min": 0, "max": rows - 1}  # ...and none missing
    for i in (0, rows // 2, rows - 1):
        row = table.filter(pc.equal(table["row_id"], i)).to_pylist()[0]
        assert row["score"] == pytest.approx(expected_score(i))
    return table


@pytest.mark.slow
def test_a_million_rows_are_scored_in_bounded_memory(million_rows: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = start_job(batch_spec(str(million_rows), str(out)), tmp_path / "home", tmp_path / "store")
    lines = job.lines()
    memory = lines[-1]
    progress = [line for line in lines[:-1] if "rows_done" in line]
    assert progress[0]["rows_total"] == 1_000_000 and progress[-1]["rows_done"] == 1_000_000
    check_output(out, 1_000_000)
    assert len(list(out.glob("part-*.parquet"))) == math.ceil(1_000_000 / 7_000)

    growth_mib = (int(memory["peak_rss_kib"]) - int(memory["rss_before_kib"])) / 1024
    last_750k_mib = (int(memory["peak_rss_kib"]) - int(memory["peak_after_250k_rows_kib"])) / 1024
    print(f"peak RSS growth {growth_mib:.0f} MiB, of which {last_750k_mib:.0f} MiB during the last 750k rows")
    assert growth_mib < DECODED_INPUT_MIB, "memory grew like the whole input was loaded"
    assert last_750k_mib < 48, "memory kept growing with the rows read"


@pytest.mark.slow
def test_a_job_killed_mid_way_resumes_without_duplicates_or_gaps(million_rows: Path, tmp_path: Path) -> None:
    out, home = tmp_path / "out", tmp_path / "home"
    spec = batch_spec(str(million_rows), str(out))
    checkpoint = home / "jobs" / "dep_batch" / "batch.json"

    def rows_done() -> int:
        try:
            return int(json.loads(checkpoint.read_text())["rows_done"])
        except (OSError, ValueError):
            return 0

    first = start_job(spec, home, tmp_path / "store", delay_ms=25)
    wait_for(lambda: rows_done() >= 300_000, timeout=120, what="the job to get 30% through")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    done_at_kill = rows_done()
    assert 300_000 <= done_at_kill < 1_000_000

    second = start_job(spec, home, tmp_path / "store").lines()
    progress = [line for line in second if "rows_done" in line]
    assert progress[0]["rows_done"] >= done_at_kill  # resumed, not restarted
    assert progress[-1]["rows_done"] == 1_000_000
    check_output(out, 1_000_000)
    assert sorted(p.name for p in out.iterdir()) == [f"part-{n:06d}.parquet" for n in range(143)]


def _run(spec: dict, home: Path, store: object, predict_fn=predict, stop: asyncio.Event | None = None) -> list:
    reports: list[StatusPayload] = []
    asyncio.run(
        run_job(
            spec=spec,  # type: ignore[arg-type]
            predict=predict_fn,
            report=reports.append,
            home=home,
            store=store,  # type: ignore[arg-type]
            stop=stop or asyncio.Event(),
        )
    )
    return reports


def test_a_stopped_job_resumes_where_it_stopped_and_a_finished_one_is_not_redone(tmp_path: Path) -> None:
    write_rows(tmp_path / "in" / "rows.parquet", 0, 50_000, row_group=8_000)
    spec = batch_spec(str(tmp_path / "in"), str(tmp_path / "out"), batch_rows=3_000)
    store = LocalObjectStore(tmp_path / "store")
    calls = []

    async def stopping_predict(table: pa.Table) -> pa.Table:
        calls.append(table.num_rows)
        if len(calls) == 5:
            stop.set()
        return await predict(table)

    stop = asyncio.Event()
    stopped = _run(spec, tmp_path / "home", store, stopping_predict, stop)  # returns early, no error
    assert stopped[-1]["rows_done"] < 50_000
    written = len(list((tmp_path / "out").glob("part-*")))
    assert 0 < written < 17
    reports = _run(spec, tmp_path / "home", store)
    assert reports[0]["rows_done"] == written * 3_000 and reports[-1]["rows_done"] == 50_000
    check_output(tmp_path / "out", 50_000)
    again = _run(spec, tmp_path / "home", store, stopping_predict)  # finished: nothing is predicted again
    assert len(calls) == 5 and again[-1]["rows_done"] == 50_000


def test_batch_reads_and_writes_s3(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.create_bucket()
    store = S3ObjectStore(bucket, "agent", endpoint_url=s3.endpoint_url, region=s3.region)
    for name, start, count in (("part-a.parquet", 0, 12_000), ("part-b.parquet", 12_000, 9_000)):
        write_rows(tmp_path / name, start, count, row_group=5_000)
        store.client.upload_file(str(tmp_path / name), bucket, f"inputs/day=1/{name}")
    spec = batch_spec(f"s3://{bucket}/inputs", f"s3://{bucket}/scored/run-1", batch_rows=4_000)
    reports = _run(spec, tmp_path / "home", store)
    assert reports[-1]["rows_done"] == reports[-1]["rows_total"] == 21_000
    keys = sorted(o["Key"] for o in store.client.list_objects_v2(Bucket=bucket, Prefix="scored/")["Contents"])
    assert keys == [f"scored/run-1/part-{n:06d}.parquet" for n in range(6)]
    from data_plane_agent.storage.arrow import location_filesystem

    filesystem, path = location_filesystem(f"s3://{bucket}/scored/run-1", store=store)
    check_output(path, 21_000, filesystem=filesystem)
    store.close()


def test_bad_batch_input_is_refused_naming_the_field(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store")
    with pytest.raises(InvalidInput) as missing:
        _run(batch_spec(str(tmp_path / "nope"), str(tmp_path / "out")), tmp_path / "home", store)
    assert missing.value.field == "batch.input" and "does not exist" in missing.value.message
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.parquet").write_text("not parquet")
    with pytest.raises(InvalidInput) as junk:
        _run(batch_spec(str(tmp_path / "junk"), str(tmp_path / "out")), tmp_path / "home", store)
    assert junk.value.field == "batch.input" and "x.parquet" in junk.value.message
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_an_output_inside_the_input_is_refused(tmp_path: Path) -> None:
    write_rows(tmp_path / "in" / "rows.parquet", 0, 100)
    with pytest.raises(InvalidInput) as inside:
        _run(batch_spec(str(tmp_path / "in"), str(tmp_path / "in" / "scored")), tmp_path / "home", None)
    assert inside.value.field == "batch.output"


def test_a_new_build_scores_everything_again(tmp_path: Path) -> None:
    write_rows(tmp_path / "in.parquet", 0, 10_000)
    spec = batch_spec(str(tmp_path / "in.parquet"), str(tmp_path / "out"), batch_rows=3_000)
    spec["variations"] = [{"name": "default", "build_id": "bld_1", "weight": 100, "shadow": False}]
    store = LocalObjectStore(tmp_path / "store")
    _run(spec, tmp_path / "home", store)
    calls = []

    async def counting(table: pa.Table) -> pa.Table:
        calls.append(table.num_rows)
        return await predict(table)

    _run(spec, tmp_path / "home", store, counting)
    assert calls == []  # same build, same input: already done
    spec["variations"][0]["build_id"] = "bld_2"
    _run(spec, tmp_path / "home", store, counting)
    assert sum(calls) == 10_000
    check_output(tmp_path / "out", 10_000)


def test_a_model_answering_the_wrong_number_of_rows_fails_the_job(tmp_path: Path) -> None:
    write_rows(tmp_path / "in.parquet", 0, 5_000)

    async def short(table: pa.Table) -> pa.Table:
        return pa.table({"score": pa.array([1.0] * (table.num_rows - 1))})

    with pytest.raises(ModelFailed, match="returned 999 rows for a batch of 1000"):
        _run(
            batch_spec(str(tmp_path / "in.parquet"), str(tmp_path / "out"), batch_rows=1_000),
            tmp_path / "home",
            LocalObjectStore(tmp_path / "store"),
            short,
        )
    assert list((tmp_path / "out").glob("part-*")) == []
