"""The buffered writer and SQL over it, on a directory and on S3: rows land in hourly Parquet
partitions, are queryable before and after a flush exactly once, and a failing store loses nothing."""

from __future__ import annotations

import calendar
from pathlib import Path
from typing import BinaryIO

import pytest

from data_plane_agent.lake import InferenceLake, LakeQuery, MinuteMetrics
from data_plane_agent.storage import LocalObjectStore, ObjectStore, StoredObject
from shared.errors import Unavailable
from shared.serving import MetricsPayload
from tests.data_plane_agent.lake.conftest import make_record

AT_0506 = calendar.timegm((2026, 3, 4, 5, 6, 7)) * 1000  # 2026-03-04 05:06:07 UTC
AT_0659 = calendar.timegm((2026, 3, 4, 6, 59, 0)) * 1000


def _lake(store: ObjectStore, tmp_path: Path, **kw: object) -> InferenceLake:
    lake = InferenceLake(store, tmp_path / "spool", flush_interval=3600, **kw)  # type: ignore[arg-type]
    lake.start()
    return lake


def test_predictions_land_in_hourly_partitions_and_answer_sql(store: ObjectStore, tmp_path: Path) -> None:
    lake = _lake(store, tmp_path)
    for i in range(3):
        lake.record(make_record(i, at_ms=AT_0506 + i, latency_ms=1.0 + i))
    lake.record(make_record(3, at_ms=AT_0506 + 3, status="MODEL_ERROR"))
    lake.record(make_record(4, model="fraud", at_ms=AT_0659, shadow=True, variation="candidate"))
    lake.close()

    assert list((tmp_path / "spool").iterdir()) == []  # everything reached the store
    keys = list(store.list("lake/"))
    dirs = sorted({k.rsplit("/", 1)[0] for k in keys})
    assert dirs == [
        "lake/predictions/model=churn/date=2026-03-04/hour=05",
        "lake/predictions/model=fraud/date=2026-03-04/hour=06",
    ]
    assert all(k.endswith(".parquet") for k in keys) and len(keys) == 2

    query = LakeQuery(store)  # a fresh reader: only what is in the store
    result = query.run(
        "SELECT request_id, model, variation, build_id, timestamp, latency_ms, status, shadow, rows, "
        "inputs_json, outputs_json, error, date, hour FROM predictions ORDER BY request_id"
    )
    assert [c["name"] for c in result.columns][:3] == ["request_id", "model", "variation"]
    assert len(result.rows) == 5 and not result.truncated
    first = dict(zip([c["name"] for c in result.columns], result.rows[0], strict=True))
    assert first == {
        "request_id": "r0",
        "model": "churn",
        "variation": "default",
        "build_id": "bld_1",
        "timestamp": "2026-03-04T05:06:07",
        "latency_ms": 1.0,
        "status": "ok",
        "shadow": False,
        "rows": 1,
        "inputs_json": '[{"age": 0, "plan": "pro"}]',
        "outputs_json": '[{"churn_probability": 0.0}]',
        "error": None,
        "date": "2026-03-04",
        "hour": 5,
    }
    failed = query.run("SELECT status, error, outputs_json FROM predictions WHERE request_id = 'r3'").rows
    assert failed == [["MODEL_ERROR", "the model raised ValueError", None]]
    by_model = query.run(
        "SELECT model, count(*) AS n, count(*) FILTER (WHERE shadow) AS shadows FROM predictions "
        "WHERE date = '2026-03-04' GROUP BY model ORDER BY model"
    ).rows
    assert by_model == [["churn", 4, 0], ["fraud", 1, 1]]
    ages = query.run(
        "SELECT CAST(json_extract(inputs_json, '$[0].age') AS INT) AS age FROM predictions "
        "WHERE model = 'churn' AND date = '2026-03-04' AND hour = 5 ORDER BY age"
    ).rows
    assert ages == [[0], [1], [2], [3]]


def test_rows_are_queryable_before_the_flush_and_seen_once_after(store: ObjectStore, tmp_path: Path) -> None:
    lake = _lake(store, tmp_path)
    query = LakeQuery(store, lake)
    for i in range(10):
        lake.record(make_record(i))
    assert list(store.list("lake/")) == []
    assert query.run("SELECT count(*), count(DISTINCT request_id) FROM predictions").rows == [[10, 10]]
    lake.flush()
    for i in range(10, 15):
        lake.record(make_record(i))
    assert len(list(store.list("lake/"))) == 1
    assert query.run("SELECT count(*), count(DISTINCT request_id) FROM predictions").rows == [[15, 15]]
    lake.close()
    assert LakeQuery(store).run("SELECT count(*), count(DISTINCT request_id) FROM predictions").rows == [[15, 15]]


def test_size_triggers_a_flush_without_waiting_for_the_interval(tmp_path: Path) -> None:
    from tests.helpers.servers import wait_for

    store = LocalObjectStore(tmp_path / "store")
    lake = _lake(store, tmp_path, flush_rows=100)
    for i in range(250):
        lake.record(make_record(i))
    wait_for(lambda: len(list(store.list("lake/"))) >= 1, timeout=10, what="a size-triggered flush")
    lake.close()
    assert LakeQuery(store).run("SELECT count(DISTINCT request_id), count(*) FROM predictions").rows == [[250, 250]]


def test_logging_switched_off_keeps_rows_out_but_aggregates_still_count(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store")
    events: list[MetricsPayload] = []
    lake = _lake(store, tmp_path, metrics=MinuteMetrics(events.append), logging_enabled=lambda m: m != "private")
    lake.record(make_record(1, model="private"))
    lake.record(make_record(2, model="private", status="TIMEOUT"))
    lake.record(make_record(3, model="churn"))
    lake.close()
    assert LakeQuery(store).run("SELECT model, count(*) FROM predictions GROUP BY model").rows == [["churn", 1]]
    counts = {e["model"]: (e["count"], e["errors"]) for e in events}
    assert counts == {"private": (2, 1), "churn": (1, 0)}


class FlakyStore(LocalObjectStore):
    """A directory store whose puts fail while `failing` is set, after `allow` successful puts."""

    def __init__(self, root: Path, allow: int) -> None:
        super().__init__(root)
        self.allow = allow
        self.failing = True

    def put_stream(self, key: str, stream: BinaryIO) -> StoredObject:
        if self.failing:
            if self.allow <= 0:
                raise Unavailable("object store unreachable (test)")
            self.allow -= 1
        return super().put_stream(key, stream)


def test_a_store_failing_mid_flush_loses_nothing_and_the_retry_does_not_duplicate(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "store", allow=1)  # the first partition file is written, the second fails
    lake = _lake(store, tmp_path)
    for i in range(6):
        lake.record(make_record(i, model="churn" if i % 2 else "fraud"))
    lake.flush()
    assert len(list(store.list("lake/"))) == 1
    assert len(list((tmp_path / "spool").iterdir())) == 2  # the failed segment, and the current one
    # Queries see each row once even though half of the segment is already a file.
    assert LakeQuery(store, lake).run("SELECT count(*), count(DISTINCT request_id) FROM predictions").rows == [[6, 6]]
    lake.record(make_record(6))
    lake.close()  # the store still fails: rows stay spooled on disk for the next start
    assert len(list((tmp_path / "spool").iterdir())) == 2

    store.failing = False
    again = _lake(store, tmp_path)  # replays the spool
    again.close()
    assert list((tmp_path / "spool").iterdir()) == []
    rows = LakeQuery(store).run("SELECT count(*), count(DISTINCT request_id) FROM predictions").rows
    assert rows == [[7, 7]]


def test_a_full_spool_drops_rows_and_counts_them_instead_of_failing_predictions(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "store")
    lake = _lake(store, tmp_path, max_spool_bytes=2_000)
    for i in range(50):
        lake.record(make_record(i))  # never raises
    assert 0 < lake.dropped < 50
    lake.close()
    kept = LakeQuery(store).run("SELECT count(*) FROM predictions").rows[0][0]
    assert kept + lake.dropped == 50


def test_metrics_per_minute_and_variation() -> None:
    now = [600.0]
    events: list[MetricsPayload] = []
    metrics = MinuteMetrics(events.append, clock=lambda: now[0])
    for i in range(100):
        metrics.observe(make_record(i, latency_ms=float(i + 1), status="ok" if i % 10 else "MODEL_ERROR"))
    metrics.observe(make_record(100, variation="candidate", latency_ms=7.0))
    assert metrics.tick() == 0  # the minute is still open
    now[0] = 660.5
    metrics.observe(make_record(101, latency_ms=3.0))
    assert metrics.tick() == 2
    default = next(e for e in events if e["variation"] == "default")
    assert default == {
        "deployment_id": "dep_1",
        "model": "churn",
        "variation": "default",
        "build_id": "bld_1",
        "minute": "1970-01-01T00:10:00+00:00",
        "count": 100,
        "errors": 10,
        "p50_ms": 50.0,
        "p95_ms": 95.0,
        "p99_ms": 99.0,
    }
    assert metrics.tick(final=True) == 1 and events[-1]["minute"] == "1970-01-01T00:11:00+00:00"


@pytest.mark.parametrize("step", ["replay"])
def test_a_torn_last_spool_line_is_skipped_on_replay(tmp_path: Path, step: str) -> None:
    from data_plane_agent.lake.spool import encode

    spool = tmp_path / "spool"
    spool.mkdir()
    good = b"".join(encode(make_record(i)) for i in range(3))
    (spool / "0000000000001-aaaa.jsonl").write_bytes(good + encode(make_record(3))[:-9])
    store = LocalObjectStore(tmp_path / "store")
    _lake(store, tmp_path).close()
    rows = LakeQuery(store).run("SELECT request_id FROM predictions ORDER BY request_id").rows
    assert rows == [["r0"], ["r1"], ["r2"]]


def test_a_query_running_too_long_is_interrupted(tmp_path: Path) -> None:
    from data_plane_agent.lake import QueryTimeout

    query = LakeQuery(LocalObjectStore(tmp_path / "store"), timeout_s=0.5)
    with pytest.raises(QueryTimeout) as slow:
        query.run("SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000000) b")
    assert slow.value.http_status == 504 and slow.value.field == "sql"
    assert query.run("SELECT 42").rows == [[42]]
