from __future__ import annotations

import time

from data_plane_agent.lake import PredictionRecord
from tests.helpers.object_stores import s3, store

__all__ = ["make_record", "s3", "store"]


def make_record(
    i: int,
    *,
    model: str = "churn",
    variation: str = "default",
    status: str = "ok",
    latency_ms: float = 2.0,
    shadow: bool = False,
    at_ms: int | None = None,
) -> PredictionRecord:
    return PredictionRecord(
        model=model,
        deployment_id="dep_1",
        variation=variation,
        build_id="bld_1",
        request_id=f"r{i}",
        timestamp_ms=at_ms if at_ms is not None else int(time.time() * 1000),
        latency_ms=latency_ms,
        status=status,
        shadow=shadow,
        rows=1,
        inputs_json=f'[{{"age": {i}, "plan": "pro"}}]',
        outputs_json=None if status != "ok" else f'[{{"churn_probability": {i / 1000}}}]',
        error=None if status == "ok" else "the model raised ValueError",
    )
