"""Records holding the engine's Arrow tables: spooled as binary frames on the predict path, replayed
exactly (torn or corrupt frames skipped), rendered to the same JSON as Python's json would, and
`record()` never waiting for an fsync in progress."""

from __future__ import annotations

import datetime
import json
import os
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from data_plane_agent.lake import InferenceLake, LakeQuery, PredictionRecord
from data_plane_agent.lake import spool as spool_module
from data_plane_agent.lake.jsonrows import json_arrays, rows_json
from data_plane_agent.lake.spool import Spool, prepare
from data_plane_agent.storage import LocalObjectStore
from tests.data_plane_agent.lake.conftest import make_record


def table_record(i: int, inputs: pa.Table, outputs: pa.Table | None, **kw: Any) -> PredictionRecord:
    fields: dict[str, Any] = {
        "model": "churn",
        "deployment_id": "dep_1",
        "variation": "default",
        "build_id": "bld_1",
        "request_id": f"r{i}",
        "timestamp_ms": 1_772_600_000_000 + i,
        "latency_ms": 1.5,
        "status": "ok" if outputs is not None else "MODEL_ERROR",
        "shadow": False,
        "rows": inputs.num_rows,
        "inputs": inputs,
        "outputs": outputs,
        "error": None if outputs is not None else "boom",
    }
    fields.update(kw)
    return PredictionRecord(**fields)


def assorted_tables() -> list[pa.Table]:
    features = pa.table({"age": [31, None, 47], "plan": ["pro", 'with "quotes"\n', None], "income": [1.5, 0.1, 2e20]})
    return [
        features,
        features.slice(1, 1),  # a slice of a bigger table
        pa.concat_tables([features, features]),  # two chunks
        features.schema.empty_table(),  # no rows
        pa.table({"at": pa.array([datetime.datetime(2026, 3, 4, 5, 6, 7)], pa.timestamp("ms")), "ok": [True]}),
        pa.table({"x": pa.array([0.1, 2.5], pa.float32())}).replace_schema_metadata({"origin": "grpc"}),
        pa.table({"tags": pa.array([["a", "b"], []]), "plan": pa.array(["pro", "free"]).dictionary_encode()}),
    ]


def test_json_of_many_tables_matches_pythons_per_table_json() -> None:
    tables = assorted_tables()
    values: list[pa.Table | str | None] = [*tables, None, '[{"given": 1}]', *reversed(tables)]
    rendered = json_arrays(values).to_pylist()
    assert len(rendered) == len(values)
    for value, text in zip(values, rendered, strict=True):
        if isinstance(value, pa.Table):
            assert text is not None and json.loads(text) == json.loads(rows_json(value)), text
        else:
            assert text == value
    assert rendered[3] == "[]"
    nan = json_arrays([pa.table({"x": [float("nan")]})])[0].as_py()
    assert nan == '[{"x":NaN}]'  # as Python's json writes it


def _query_inputs(store: LocalObjectStore) -> dict[str, tuple[str, str | None]]:
    rows = LakeQuery(store).run("SELECT request_id, inputs_json, outputs_json FROM predictions").rows
    return {r[0]: (r[1], r[2]) for r in rows}


def test_table_records_are_replayed_from_the_spool_after_a_crash(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store")
    tables = assorted_tables()
    answer = pa.table({"churn_probability": [0.25]})
    crashed = InferenceLake(store, tmp_path / "spool", flush_interval=3600)
    crashed.start()
    for i, table in enumerate(tables):
        crashed.record(table_record(i, table, answer if i % 2 == 0 else None))
    crashed.record(make_record(100))  # a record with JSON text, as older callers make them
    # No close(): the process "died" with every row only in the spool.

    replayed = InferenceLake(store, tmp_path / "spool")
    replayed.start()
    replayed.close()
    found = _query_inputs(store)
    assert len(found) == len(tables) + 1
    for i, table in enumerate(tables):
        inputs, outputs = found[f"r{i}"]
        assert json.loads(inputs) == json.loads(rows_json(table))
        assert (json.loads(outputs) if outputs else None) == ([{"churn_probability": 0.25}] if i % 2 == 0 else None)
    assert found["r100"] == ('[{"age": 100, "plan": "pro"}]', '[{"churn_probability": 0.1}]')
    assert list((tmp_path / "spool").iterdir()) == []


def _spool_with(tmp_path: Path, count: int) -> Path:
    segment = Spool(tmp_path / "spool").new_segment()
    for i in range(count):
        segment.append(prepare(table_record(i, pa.table({"x": [float(i)]}), pa.table({"y": [i * 2.0]}))))
    segment.close()
    return segment.path


def test_a_torn_last_frame_is_skipped_on_replay(tmp_path: Path) -> None:
    path = _spool_with(tmp_path, 4)
    path.write_bytes(path.read_bytes()[:-7])  # the process died while writing the fourth record
    records = Spool.read(path)
    assert [r.request_id for r in records] == ["r0", "r1", "r2"]
    assert [r.inputs_json for r in records] == ['[{"x":0.0}]', '[{"x":1.0}]', '[{"x":2.0}]']
    assert records[2].outputs_json == '[{"y":4.0}]'


def test_a_corrupt_frame_is_skipped_and_the_rest_replayed(tmp_path: Path) -> None:
    path = _spool_with(tmp_path, 3)
    data = bytearray(path.read_bytes())
    second = data.index(b'"r1"')  # inside the second record's header
    data[second + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert [r.request_id for r in Spool.read(path)] == ["r0", "r2"]


def test_record_never_waits_for_an_fsync_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = InferenceLake(LocalObjectStore(tmp_path / "store"), tmp_path / "spool", flush_interval=3600)
    lake.start()
    real_fsync = os.fsync
    in_fsync, release = threading.Event(), threading.Event()

    def slow_disk(fd: int) -> None:
        in_fsync.set()
        release.wait(30)
        real_fsync(fd)

    try:
        lake.record(table_record(0, pa.table({"x": [1.0]}), pa.table({"y": [2.0]})))
        monkeypatch.setattr(spool_module.os, "fsync", slow_disk)
        flusher = threading.Thread(target=lake.flush)  # rotates the segment: fsyncs the old one
        flusher.start()
        assert in_fsync.wait(30), "the flush never reached its fsync"
        recorder = threading.Thread(target=lambda: lake.record(table_record(1, pa.table({"x": [3.0]}), None)))
        recorder.start()
        recorder.join(30)
        assert not recorder.is_alive(), "record() waited for the disk"
        assert not release.is_set() and flusher.is_alive()  # the fsync was still in progress
    finally:
        release.set()
        monkeypatch.setattr(spool_module.os, "fsync", real_fsync)
        lake.close()
    assert sorted(_query_inputs(LocalObjectStore(tmp_path / "store"))) == ["r0", "r1"]


def test_rows_rendered_early_and_rows_not_yet_rendered_are_each_queryable_once(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store")
    lake = InferenceLake(store, tmp_path / "spool", flush_interval=3600)
    lake.start()
    query = LakeQuery(store, lake)
    try:
        for i in range(5):
            lake.record(table_record(i, pa.table({"x": [float(i)]}), pa.table({"y": [1.0]})))
        lake._render()  # what the background thread does every fsync interval
        for i in range(5, 8):
            lake.record(table_record(i, pa.table({"x": [float(i)]}), pa.table({"y": [1.0]})))
        rows = query.run("SELECT request_id, inputs_json FROM predictions ORDER BY request_id").rows
        assert rows == [[f"r{i}", f'[{{"x":{float(i)}}}]'] for i in range(8)]
        lake.flush()
        assert query.run("SELECT count(*) FROM predictions").rows == [[8]]
    finally:
        lake.close()
    assert LakeQuery(store).run("SELECT count(*), count(DISTINCT request_id) FROM predictions").rows == [[8, 8]]
