"""One prediction as the inference lake records it (the row shape of the `predictions` table)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """A request/response pair of one model variation. Shadow answers are recorded, never returned.

    `inputs_json` / `outputs_json` are the request rows and the answer rows as JSON arrays of
    records; they stay in the data plane (the lake), never crossing to the control plane.
    """

    model: str
    deployment_id: str
    variation: str
    build_id: str
    request_id: str
    timestamp_ms: int  # when the request arrived, Unix ms UTC
    latency_ms: float
    status: str  # "ok" or an error code ("INVALID_INPUT", "TIMEOUT", "MODEL_ERROR", "UNAVAILABLE")
    shadow: bool
    rows: int
    inputs_json: str
    outputs_json: str | None
    error: str | None = None
