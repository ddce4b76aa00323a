"""log_param / log_metric: into the active build's tracker, or a default one, never failing for want of one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import mallard
from mallard.tracking import Tracker, default_tracker, tracking


def test_logs_go_to_the_active_tracker_then_back_to_the_default() -> None:
    with tracking() as tracker:
        mallard.log_param("C", 0.5)
        mallard.log_param("deep", True)
        mallard.log_metric("accuracy", 0.9)
        mallard.log_metric("accuracy", np.float32(0.95))  # the last value wins
        mallard.log_metric("rows", np.int64(10))
    assert tracker.params == {"C": "0.5", "deep": "true"}
    assert tracker.metrics == {"accuracy": pytest.approx(0.95), "rows": 10.0}

    mallard.log_metric("outside_a_build", 1.0)
    assert default_tracker().metrics["outside_a_build"] == 1.0
    assert "outside_a_build" not in tracker.metrics


def test_worker_threads_log_into_the_build() -> None:
    with tracking() as tracker:
        worker = threading.Thread(target=mallard.log_metric, args=("from_thread", 2.0))
        worker.start()
        worker.join()
    assert tracker.metrics == {"from_thread": 2.0}


def test_metrics_must_be_numbers() -> None:
    tracker = Tracker()
    with pytest.raises(TypeError, match="metric 'acc' must be a number, not str"):
        tracker.log_metric("acc", "0.9")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not bool"):
        tracker.log_metric("acc", True)
    with pytest.raises(ValueError, match="non-empty string"):
        tracker.log_param("", 1)
