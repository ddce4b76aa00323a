"""Smoke runs of the serving benchmark (bench/serving.py) with tiny sizes: it runs end to end and
prints figures. No figure is judged here (performance belongs in the benchmark's own output);
what is checked is that every target answered, without errors, and with the same model."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.bench.runner import run_bench

TINY = ["--quick", "--rows", "1,5", "--concurrency", "1,2", "--duration", "0.5", "--warmup", "0.2"]
TINY += ["--batch-rows", "5000"]


def _bench(*extra: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return run_bench("serving.py", *TINY, *extra, timeout=timeout)


def _assert_cells(cells: dict[str, Any], target: str) -> None:
    assert target in cells, f"{target} was not measured: {sorted(cells)}"
    assert sorted(cells[target]) == ["1x1", "1x2", "5x1", "5x2"]
    for shape, cell in cells[target].items():
        assert cell["requests"] > 0 and cell["errors"] == 0, (target, shape, cell)
        assert cell["p99_ms"] >= cell["p50_ms"] > 0, (target, shape, cell)
        assert cell["statuses"] == {"200": cell["requests"]} or cell["statuses"] == {"OK": cell["requests"]}


def test_quick_run_measures_the_peers_and_prints_figures() -> None:
    done = _bench("--no-ours", "--json", timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    _assert_cells(data["cells"], "bare FastAPI")
    assert data["direct"]["calls"]["1"]["calls_per_s"] > 0
    assert data["direct"]["batch"]["rows"] == 5000 and data["batch"]["raw_rows_per_s"] > 0
    assert any("same model" in note for note in data["notes"]), data["notes"]


@pytest.mark.slow
def test_quick_run_measures_our_gateway_over_rest_and_grpc_with_goals() -> None:
    """The whole stack: control plane, an agent, a build, realtime and batch deployments."""
    done = _bench("--json", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    assert not [n for n in data["notes"] if "not measured" in n or "DIFFERENT" in n], data["notes"]
    for target in ("bare FastAPI", "ours: replica alone", "ours REST", "ours gRPC"):
        _assert_cells(data["cells"], target)
    assert data["batch"]["ours_rows_per_s"] > 0 and data["batch"]["parts"] > 0, data["batch"]
    verdicts = {g["goal"]: g["met"] for g in data["goals"]}
    unmeasured = ("MLflow", "lake")  # --quick: no MLflow peer, no lake-off deployment
    assert all(met is None for goal, met in verdicts.items() if any(w in goal for w in unmeasured)), verdicts
    assert all(met in (True, False) for goal, met in verdicts.items() if not any(w in goal for w in unmeasured))
