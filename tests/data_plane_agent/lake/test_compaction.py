"""Compaction of finished hours, on a directory and on S3: many small files become one, and at
every step (compacted, late rows, a crash between writing and deleting) each row is counted once."""

from __future__ import annotations

import calendar
from pathlib import Path

from data_plane_agent.lake import InferenceLake, LakeQuery
from data_plane_agent.lake.compaction import Compactor, visible
from data_plane_agent.storage import ObjectStore
from tests.data_plane_agent.lake.conftest import make_record

HOUR_05 = calendar.timegm((2026, 3, 4, 5, 10, 0)) * 1000
LATER = calendar.timegm((2026, 3, 4, 8, 0, 0))  # 05:00-06:00 is long over
DIR_05 = "lake/predictions/model=churn/date=2026-03-04/hour=05"


def _counts(store: ObjectStore) -> list[list[object]]:
    return LakeQuery(store).run("SELECT count(*), count(DISTINCT request_id) FROM predictions").rows


def _files(store: ObjectStore) -> list[str]:
    return [k.rsplit("/", 1)[1] for k in store.list(DIR_05 + "/")]


def test_small_files_of_a_finished_hour_become_one_and_rows_are_counted_once(
    store: ObjectStore, tmp_path: Path
) -> None:
    lake = InferenceLake(store, tmp_path / "spool", flush_interval=3600)
    lake.start()
    for flush in range(5):
        for i in range(10):
            lake.record(make_record(flush * 10 + i, at_ms=HOUR_05 + flush))
        lake.flush()
    lake.record(make_record(99))  # now: an hour that is not over, never compacted
    lake.close()
    segments = [name.removesuffix(".parquet") for name in _files(store)]
    assert len(segments) == 5

    compactor = Compactor(store, tmp_path / "work")
    assert compactor.run_once(now=LATER) == 1
    assert len(_files(store)) == 6  # the merged files stay one pass longer, hidden
    assert [k.rsplit("/", 1)[1] for k in visible(store.list(DIR_05 + "/"))] == [f"c-{max(segments)}.parquet"]
    assert _counts(store) == [[51, 51]]

    assert compactor.run_once(now=LATER) == 0
    assert _files(store) == [f"c-{max(segments)}.parquet"]
    assert _counts(store) == [[51, 51]]
    rows = (
        LakeQuery(store)
        .run("SELECT request_id, latency_ms, status FROM predictions WHERE date = '2026-03-04' AND hour = 5")
        .rows
    )
    assert sorted(r[0] for r in rows) == sorted(f"r{i}" for i in range(50)) and rows[0][1:] == [2.0, "ok"]

    # Rows of that hour flushed after the compaction (a replayed spool) are seen, then merged too.
    late = InferenceLake(store, tmp_path / "spool2", flush_interval=3600)
    late.start()
    late.record(make_record(50, at_ms=HOUR_05))
    late.close()
    assert _counts(store) == [[52, 52]]
    assert compactor.run_once(now=LATER) == 1
    assert _counts(store) == [[52, 52]]
    compactor.run_once(now=LATER)
    assert len(_files(store)) == 1 and _counts(store) == [[52, 52]]


def test_a_crash_between_writing_the_compacted_file_and_deleting_leaves_no_duplicate(
    store: ObjectStore, tmp_path: Path
) -> None:
    lake = InferenceLake(store, tmp_path / "spool", flush_interval=3600)
    lake.start()
    for flush in range(3):
        lake.record(make_record(flush, at_ms=HOUR_05))
        lake.flush()
    lake.close()
    Compactor(store, tmp_path / "work").run_once(now=LATER)  # then the agent dies
    assert len(_files(store)) == 4 and _counts(store) == [[3, 3]]
    restarted = Compactor(store, tmp_path / "work")  # knows nothing of the previous pass
    restarted.run_once(now=LATER)
    assert _counts(store) == [[3, 3]]
    restarted.run_once(now=LATER)
    assert len(_files(store)) == 1 and _counts(store) == [[3, 3]]


def test_an_hour_just_over_is_left_alone_until_it_settles(store: ObjectStore, tmp_path: Path) -> None:
    lake = InferenceLake(store, tmp_path / "spool", flush_interval=3600)
    lake.start()
    for flush in range(3):
        lake.record(make_record(flush, at_ms=HOUR_05))
        lake.flush()
    lake.close()
    hour_over = calendar.timegm((2026, 3, 4, 6, 5, 0))
    assert Compactor(store, tmp_path / "work", settle_seconds=900).run_once(now=hour_over) == 0
    assert len(_files(store)) == 3
