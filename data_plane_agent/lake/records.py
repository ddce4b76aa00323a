"""One prediction as the inference lake records it (the row shape of the `predictions` table)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa


@dataclass(init=False, slots=True, eq=False)
class PredictionRecord:
    """A request/response pair of one model variation. Shadow answers are recorded, never returned.

    `inputs` / `outputs` are the request and answer tables as the engine had them (no copy, no
    serialisation on the predict path), or their rows as JSON text already; `inputs_json` /
    `outputs_json` give the JSON arrays of records the `predictions` table holds (the lake makes
    them in bulk when it flushes). They stay in the data plane, never crossing to the control plane.
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
    inputs: pa.Table | str  # "" when the model's logging is off
    outputs: pa.Table | str | None  # None on error
    error: str | None
    # The tables as the spool serialised them (spool.stream_bytes makes IPC streams of them at the
    # flush, off the serving path), or None.
    inputs_spooled: Any
    outputs_spooled: Any

    def __init__(
        self,
        *,
        model: str,
        deployment_id: str,
        variation: str,
        build_id: str,
        request_id: str,
        timestamp_ms: int,
        latency_ms: float,
        status: str,
        shadow: bool,
        rows: int,
        inputs: pa.Table | str = "",
        outputs: pa.Table | str | None = None,
        error: str | None = None,
        inputs_json: str | None = None,
        outputs_json: str | None = None,
        inputs_spooled: Any = None,
        outputs_spooled: Any = None,
    ) -> None:
        self.model = model
        self.deployment_id = deployment_id
        self.variation = variation
        self.build_id = build_id
        self.request_id = request_id
        self.timestamp_ms = timestamp_ms
        self.latency_ms = latency_ms
        self.status = status
        self.shadow = shadow
        self.rows = rows
        self.inputs = inputs_json if inputs_json is not None else inputs
        self.outputs = outputs_json if outputs_json is not None else outputs
        self.error = error
        self.inputs_spooled = inputs_spooled
        self.outputs_spooled = outputs_spooled

    @property
    def inputs_json(self) -> str:
        """The request rows as a JSON array of records ("" when logging was off)."""
        if isinstance(self.inputs, str):
            return self.inputs
        return _one_json(self.inputs)

    @property
    def outputs_json(self) -> str | None:
        """The answer rows as a JSON array of records (None on error)."""
        if self.outputs is None or isinstance(self.outputs, str):
            return self.outputs
        return _one_json(self.outputs)


def _one_json(table: pa.Table) -> str:
    from data_plane_agent.lake.jsonrows import json_arrays  # DuckDB is loaded only when rows are rendered

    text = json_arrays([table])[0].as_py()
    assert isinstance(text, str)
    return text
