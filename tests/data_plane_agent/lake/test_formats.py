"""Request and answer tables are stored typed (Arrow IPC) and shown as JSON only when a query reads
them; rows recorded as JSON text, and files written before the typed columns existed, read the
same. Compaction merges all three kinds without changing an answer."""

from __future__ import annotations

import calendar
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_plane_agent.lake import InferenceLake, LakeQuery
from data_plane_agent.lake.compaction import Compactor, visible
from data_plane_agent.lake.records import PredictionRecord
from data_plane_agent.lake.table import FILE_SCHEMA, TYPED_COLUMNS
from data_plane_agent.storage import ObjectStore
from tests.data_plane_agent.lake.conftest import make_record

HOUR_05 = calendar.timegm((2026, 3, 4, 5, 10, 0)) * 1000
LATER = calendar.timegm((2026, 3, 4, 8, 0, 0))
DIR_05 = "lake/predictions/model=churn/date=2026-03-04/hour=05"


def typed_record(i: int) -> PredictionRecord:
    inputs = pa.table({"age": pa.array([i, i + 1], pa.int64()), "plan": ["pro", None], "score": [0.5, float(i)]})
    outputs = pa.table({"churn_probability": [i / 1000, 0.25]})
    return PredictionRecord(
        model="churn",
        deployment_id="dep_1",
        variation="default",
        build_id="bld_1",
        request_id=f"t{i}",
        timestamp_ms=HOUR_05 + i,
        latency_ms=1.5,
        status="ok",
        shadow=False,
        rows=2,
        inputs=inputs,
        outputs=outputs,
    )


def old_format_file(store: ObjectStore) -> None:
    """A file as the lake wrote it before the typed columns: JSON text, no `*_arrow` columns."""
    old = pa.schema([f for f in FILE_SCHEMA if f.name not in TYPED_COLUMNS])
    row = {f.name: None for f in old} | {
        "model": "churn",
        "request_id": "old1",
        "timestamp": HOUR_05 // 1000 * 1000,
        "status": "ok",
        "rows": 1,
        "inputs_json": '[{"age":70,"plan":"basic"}]',
        "outputs_json": '[{"churn_probability":0.9}]',
    }
    table = pa.Table.from_pylist([row], schema=old)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    sink.seek(0)
    store.put_stream(f"{DIR_05}/old-segment.parquet", sink)


def answers(store: ObjectStore, lake: InferenceLake | None = None) -> dict[str, tuple[object, object]]:
    query = LakeQuery(store, lake)
    rows = query.run("SELECT request_id, inputs_json, outputs_json FROM predictions ORDER BY request_id").rows
    return {r[0]: (json.loads(r[1]), json.loads(r[2])) for r in rows}


def test_typed_text_and_old_rows_answer_the_same_json_before_and_after_compaction(
    store: ObjectStore, tmp_path: Path
) -> None:
    lake = InferenceLake(store, tmp_path / "spool", flush_interval=3600)
    lake.start()
    for i in range(3):
        lake.record(typed_record(i))
        lake.record(make_record(i, at_ms=HOUR_05 + i))
    expected = {
        **{
            f"t{i}": (
                [{"age": i, "plan": "pro", "score": 0.5}, {"age": i + 1, "plan": None, "score": float(i)}],
                [{"churn_probability": i / 1000}, {"churn_probability": 0.25}],
            )
            for i in range(3)
        },
        **{f"r{i}": ([{"age": i, "plan": "pro"}], [{"churn_probability": i / 1000}]) for i in range(3)},
    }
    assert answers(store, lake) == expected  # unflushed rows
    lake.flush()
    lake.close()
    # The files hold the tables typed, the JSON columns only for rows that came as text.
    (key,) = list(store.list(DIR_05 + "/"))
    with store.open_read(key) as handle:
        stored = pq.read_table(io.BytesIO(handle.read()))
    by_id = {r["request_id"]: r for r in stored.to_pylist()}
    assert by_id["t1"]["inputs_json"] is None and by_id["t1"]["inputs_arrow"] is not None
    assert by_id["r1"]["inputs_json"] is not None and by_id["r1"]["inputs_arrow"] is None
    old_format_file(store)
    expected["old1"] = ([{"age": 70, "plan": "basic"}], [{"churn_probability": 0.9}])
    assert answers(store) == expected
    # The view shows the documented columns only.
    columns = [c["name"] for c in LakeQuery(store).run("SELECT * FROM predictions LIMIT 1").columns]
    assert not set(TYPED_COLUMNS) & set(columns) and {"inputs_json", "outputs_json"} <= set(columns)
    # Compaction merges the new and the old file into one; every answer is unchanged.
    assert Compactor(store, tmp_path / "work").run_once(now=LATER) == 1
    assert len(visible(store.list(DIR_05 + "/"))) == 1
    assert answers(store) == expected
    count = LakeQuery(store).run("SELECT count(*) FROM predictions WHERE inputs_json LIKE '%\"age\":1,%'").rows
    assert count == [[2]]  # t0 (its second row) and t1 (its first): the JSON is there to filter on
