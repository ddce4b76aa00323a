"""`mallard.v1.PredictionService`: the gRPC front of the prediction gateway.

Same checks and engine as the REST route (data_plane_agent/api/routes_predict.py); inputs come
as an Arrow IPC stream or typed columns, and the answer uses the form the request used.
"""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa
from grpc import StatusCode, aio

from data_plane_agent.api.inputs import ARROW_TYPES, InputLimits, read_arrow_stream, write_arrow_stream
from data_plane_agent.api.routes_predict import InputSchemas, request_id_from
from data_plane_agent.serving import ServingEngine
from shared.errors import InvalidInput, MallardError
from shared.protos.mallard.v1 import prediction_pb2, prediction_pb2_grpc

log = logging.getLogger("mallard.gateway")

_VALUE_FIELDS = {
    "int64_values": ARROW_TYPES["int"],
    "double_values": ARROW_TYPES["float"],
    "string_values": ARROW_TYPES["str"],
    "bool_values": ARROW_TYPES["bool"],
}


def columns_to_table(columns: prediction_pb2.Columns) -> pa.Table:
    """Typed protobuf columns -> an Arrow table (types are checked against the schema afterwards)."""
    arrays: dict[str, pa.Array] = {}
    lengths: set[int] = set()
    for column in columns.columns:
        which = column.WhichOneof("values")
        if not column.name:
            raise InvalidInput("every column needs a name", field="columns")
        if which is None:
            raise InvalidInput(f"column {column.name!r} has no values", field=column.name)
        if column.name in arrays:
            raise InvalidInput(f"column {column.name!r} appears twice", field=column.name)
        values: list[Any] = list(getattr(column, which).values)
        for index in column.nulls:
            if index >= len(values):
                raise InvalidInput(
                    f"column {column.name!r} marks row {index} null but has {len(values)}", field=column.name
                )
            values[index] = None
        arrays[column.name] = pa.array(values, type=_VALUE_FIELDS[which])
        lengths.add(len(values))
    if len(lengths) > 1:
        raise InvalidInput(f"every column must have the same length, got lengths {sorted(lengths)}", field="columns")
    return pa.table(arrays)


def table_to_columns(table: pa.Table) -> prediction_pb2.Columns:
    out = prediction_pb2.Columns()
    for name, column in zip(table.column_names, table.columns, strict=True):
        values = column.to_pylist()
        proto = out.columns.add(name=name)
        nulls = [i for i, v in enumerate(values) if v is None]
        type_ = column.type
        if pa.types.is_boolean(type_):
            proto.bool_values.values.extend([bool(v) for v in values])
        elif pa.types.is_integer(type_):
            proto.int64_values.values.extend([0 if v is None else int(v) for v in values])
        elif pa.types.is_floating(type_):
            proto.double_values.values.extend([0.0 if v is None else float(v) for v in values])
        else:
            proto.string_values.values.extend(["" if v is None else str(v) for v in values])
        proto.nulls.extend(nulls)
    return out


class PredictionServicer(prediction_pb2_grpc.PredictionServiceServicer):
    def __init__(self, engine: ServingEngine, limits: InputLimits | None = None) -> None:
        self.engine = engine
        self.limits = limits or InputLimits()
        self.schemas = InputSchemas(engine, self.limits)

    def add_to_server(self, server: aio.Server) -> None:
        prediction_pb2_grpc.add_PredictionServiceServicer_to_server(self, server)

    async def Predict(
        self, request: prediction_pb2.PredictRequest, context: aio.ServicerContext
    ) -> prediction_pb2.PredictResponse:
        request_id = ""
        try:
            request_id = request_id_from(request.request_id or None)
            if not request.model:
                raise InvalidInput("model is required", field="model")
            inputs = self.schemas.get(request.model)
            form = request.WhichOneof("input")
            if form == "arrow_ipc":
                if len(request.arrow_ipc) > self.limits.max_bytes:
                    raise InvalidInput(f"arrow_ipc is larger than {self.limits.max_bytes} bytes", field="arrow_ipc")
                table = inputs.from_arrow(read_arrow_stream(request.arrow_ipc))
            elif form == "columns":
                table = inputs.from_arrow(columns_to_table(request.columns))
            else:
                raise InvalidInput("send the inputs as arrow_ipc or columns", field="input")
            timeout_s = request.timeout_ms / 1000 if request.timeout_ms else None
            remaining = context.time_remaining()
            if remaining is not None:
                timeout_s = min(timeout_s, remaining) if timeout_s else remaining
            outcome = await self.engine.predict(request.model, table, request_id=request_id, timeout_s=timeout_s)
        except MallardError as exc:
            if exc.field:
                context.set_trailing_metadata((("mallard-field", exc.field),))
            await context.abort(exc.grpc_code, exc.message)
        except Exception:
            log.exception("prediction %s failed unexpectedly", request_id)
            await context.abort(StatusCode.INTERNAL, "internal error; the agent logged the details")
        response = prediction_pb2.PredictResponse(
            request_id=request_id,
            model=request.model,
            deployment_id=outcome.deployment_id,
            variation=outcome.variation,
            build_id=outcome.build_id,
            latency_ms=outcome.latency_ms,
        )
        if form == "arrow_ipc":
            response.arrow_ipc = write_arrow_stream(outcome.outputs)
        else:
            response.columns.CopyFrom(table_to_columns(outcome.outputs))
        return response
