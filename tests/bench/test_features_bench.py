"""Smoke runs of the feature-store benchmark (bench/features.py) on tiny data: it runs end to end
and prints figures. No figure is judged here (performance belongs in the benchmark's own output);
what is checked is that every entity row came back with the reference's values."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.bench.runner import run_bench

TINY = ["--quick", "--entities", "300", "--entity-rows", "300", "--days", "2", "--requests", "10"]
TINY += ["--batch-requests", "5", "--warmup", "2"]


def _bench(*extra: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return run_bench("features.py", *TINY, *extra, timeout=timeout)


def _assert_online_figures(online: dict[str, Any]) -> None:
    for where in ("in-process", "http"):
        for shape in ("1x50", "100x50"):
            figures = online[where][shape]
            assert figures["requests"] > 0 and figures["errors"] == 0, (where, shape, figures)
            assert figures["p99_ms"] >= figures["p50_ms"] > 0, (where, shape, figures)
            assert figures["values"] > 0, f"{where} {shape}: no feature value came back"


def test_quick_run_measures_ours_and_every_row_comes_back_right() -> None:
    done = _bench("--no-feast", "--json", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    ours = data["mallard"]
    verdict = ours["historical"]["verdict"]
    assert verdict["rows"] == verdict["entity_rows"] == 300
    assert verdict["missing_rows"] == verdict["duplicate_rows"] == verdict["wrong_cells"] == 0, verdict
    assert verdict["null_cells"] == verdict["expected_null_cells"] > 0  # some rows have nothing in the TTL
    assert ours["historical"]["seconds"] > 0 and ours["historical"]["maxrss_kib"] > 0
    assert ours["materialize"]["rows"] == 300 * 2 * 5 and ours["materialize"]["rows_per_second"] > 0
    _assert_online_figures(ours["online"])
    assert all(goal["met"] is None for goal in data["goals"])  # no peer, no ratio


@pytest.mark.slow
def test_quick_run_against_feast_prints_the_table_with_goals() -> None:
    """Installs Feast into bench/.cache/feast-venv on first use (a minute or two from the package index)."""
    done = _bench(timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    for heading in ("historical retrieval", "materialization", "online retrieval", "goals"):
        assert heading in table, table
    for row in ("feast file", "feast duckdb", "mallard"):
        assert row in table, table
    goal_lines = [line for line in table.splitlines() if line.strip().startswith(("historical >=", "online p99"))]
    assert len(goal_lines) == 6 and all(line.rstrip().endswith(("MET", "MISSED")) for line in goal_lines), table
