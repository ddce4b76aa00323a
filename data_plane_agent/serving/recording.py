"""The prediction records the engine hands to its recorder (the inference lake): one per live
and per shadow answer, errors included. A record holds the request and answer tables themselves
(no copy, no JSON on the predict path: the lake renders them in bulk when it flushes). With a
model's logging off, it holds no rows (only the aggregates use such a record)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pyarrow as pa

from data_plane_agent.lake.records import PredictionRecord
from data_plane_agent.serving.deployment import Deployment
from data_plane_agent.serving.routing import Route
from shared.errors import MallardError

log = logging.getLogger("mallard.agent.serving")
_STATUS_OF = {"prediction_timeout": "TIMEOUT", "model_failed": "MODEL_ERROR", "unavailable": "UNAVAILABLE"}


def record_prediction(
    recorder: Callable[[PredictionRecord], None],
    deployment: Deployment,
    route: Route | None,
    build_id: str,
    request_id: str,
    arrived_ms: int,
    latency_ms: float,
    table: pa.Table,
    outputs: pa.Table | None,
    error: MallardError | None,
) -> None:
    """Call `recorder` with the record of one answer; a recorder failure is logged, never raised."""
    variation = route.name if route is not None else ""
    if not build_id and route is not None:
        build_id = next((v["build_id"] for v in deployment.spec["variations"] if v["name"] == variation), "")
    logging_on = bool(deployment.spec.get("logging", True))
    try:
        recorder(
            PredictionRecord(
                model=deployment.model,
                deployment_id=deployment.id,
                variation=variation,
                build_id=build_id,
                request_id=request_id,
                timestamp_ms=arrived_ms,
                latency_ms=latency_ms,
                status="ok" if error is None else _STATUS_OF.get(error.code, error.code.upper()),
                shadow=bool(route is not None and route.shadow),
                rows=table.num_rows,
                inputs=table if logging_on else "",
                outputs=outputs if logging_on else None,
                error=error.message[:500] if error is not None else None,
            )
        )
    except Exception:  # the lake must never fail a prediction
        log.exception("recording a prediction of %s failed", deployment.model)
