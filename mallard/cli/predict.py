"""`mallard models predict NAME --json DATA | --file F | --example [--grpc]`.

Predictions go straight to the data plane (REST by default, gRPC with `--grpc`) with a
short-lived JWT from the control plane; inputs and outputs never pass through the control plane.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mallard.cli.output import handle_errors, print_json
from mallard.client import ApiError, ControlPlaneClient
from mallard.dataplane import DataPlaneClient


def _body_from_json(data: Any, where: str) -> dict[str, Any]:
    """A record, a list of records, or {"records": [...]} / {"columns": {...}} -> a request body."""
    if isinstance(data, list):
        return {"records": data}
    if isinstance(data, dict) and set(data) in ({"records"}, {"columns"}):
        return data
    if isinstance(data, dict):
        return {"records": [data]}
    raise typer.BadParameter("expected a JSON object, a list of objects, or {'records': [...]}", param_hint=where)


def _read_file(path: Path) -> tuple[dict[str, Any] | None, bytes | None]:
    """(JSON body, None) for .json; (None, Arrow IPC stream) for .parquet, .csv, .arrow/.arrows."""
    import pyarrow as pa

    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            return _body_from_json(json.loads(path.read_text()), "--file"), None
        except ValueError as exc:
            raise typer.BadParameter(f"{path} is not valid JSON: {exc}", param_hint="--file") from exc
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    elif suffix == ".csv":
        import pyarrow.csv as pcsv

        table = pcsv.read_csv(path)
    elif suffix in (".arrow", ".arrows"):
        return None, path.read_bytes()
    else:
        raise typer.BadParameter("use a .json, .parquet, .csv or .arrow file", param_hint="--file")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return None, sink.getvalue().to_pybytes()


def _example(dp: DataPlaneClient, model: str, rows: int) -> dict[str, Any]:
    from mallard.schema import ModelSchema

    schema = ModelSchema.from_dict(dp.model_schema(model))
    frame = schema.example(rows)
    return {"records": json.loads(frame.to_json(orient="records"))}


def _arrow_from_body(body: dict[str, Any]) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pylist(body["records"]) if "records" in body else pa.table(body["columns"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _grpc_predict(
    address: str, token: str, model: str, arrow: bytes, *, request_id: str | None, timeout_ms: int | None
) -> dict[str, Any]:
    import grpc
    import pyarrow as pa

    from shared.protos.mallard.v1 import prediction_pb2, prediction_pb2_grpc

    request = prediction_pb2.PredictRequest(
        model=model, request_id=request_id or "", arrow_ipc=arrow, timeout_ms=timeout_ms or 0
    )
    with grpc.insecure_channel(address) as channel:
        stub = prediction_pb2_grpc.PredictionServiceStub(channel)
        try:
            answer = stub.Predict(request, metadata=(("authorization", f"Bearer {token}"),), timeout=60)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            field = dict(exc.trailing_metadata() or ()).get("mallard-field")  # type: ignore[attr-defined]
            message = f"{code.name}: {exc.details()}"  # type: ignore[attr-defined]
            raise ApiError(message, code=code.name.lower(), field=field) from exc
    with pa.ipc.open_stream(answer.arrow_ipc) as reader:
        outputs = reader.read_all()
    return {
        "model": answer.model,
        "request_id": answer.request_id,
        "deployment_id": answer.deployment_id,
        "variation": answer.variation,
        "build_id": answer.build_id,
        "latency_ms": round(answer.latency_ms, 3),
        "predictions": outputs.to_pylist(),
    }


@handle_errors
def predict(
    model: str = typer.Argument(..., help="The deployed model's name."),
    json_data: str | None = typer.Option(None, "--json", help="A record, a list of records, or {'columns': ...}."),
    file: Path | None = typer.Option(None, "--file", exists=True, dir_okay=False, help=".json/.parquet/.csv/.arrow"),
    example: bool = typer.Option(False, "--example", help="Send an input generated from the model's schema."),
    rows: int = typer.Option(1, "--rows", min=1, max=10_000, help="Rows for --example."),
    use_grpc: bool = typer.Option(False, "--grpc", help="Call the data plane's gRPC API instead of REST."),
    request_id: str | None = typer.Option(None, "--request-id", help="Your id for the request (logged in the lake)."),
    timeout_ms: int | None = typer.Option(None, "--timeout-ms", min=1, max=600_000),
) -> None:
    """Predict with a deployed model; prints the answer as JSON (predictions, variation, build, request id)."""
    if sum(x is not None and x is not False for x in (json_data, file, example or None)) != 1:
        raise typer.BadParameter("give exactly one of --json, --file or --example")
    body: dict[str, Any] | None = None
    arrow: bytes | None = None
    if json_data is not None:
        try:
            body = _body_from_json(json.loads(json_data), "--json")
        except ValueError as exc:
            raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--json") from exc
    elif file is not None:
        body, arrow = _read_file(file)
    with ControlPlaneClient() as cp, DataPlaneClient(cp) as dp:
        if example:
            body = _example(dp, model, rows)
        if use_grpc:
            address = cp.profile.data_plane_grpc
            if not address:
                raise ApiError(
                    "no gRPC address for the data plane: set MALLARD_DATA_PLANE_GRPC=HOST:PORT "
                    "or run `mallard dev up` (it writes a profile)"
                )
            payload = arrow if arrow is not None else _arrow_from_body(body or {})
            print_json(_grpc_predict(address, dp.token(), model, payload, request_id=request_id, timeout_ms=timeout_ms))
            return
        response = dp.predict(model, body=body, arrow=arrow, request_id=request_id, timeout_ms=timeout_ms)
    if arrow is not None:
        import pyarrow as pa

        with pa.ipc.open_stream(response.content) as reader:
            outputs = reader.read_all()
        print_json(
            {
                "model": model,
                "request_id": response.headers.get("x-request-id"),
                "deployment_id": response.headers.get("x-mallard-deployment"),
                "variation": response.headers.get("x-mallard-variation"),
                "build_id": response.headers.get("x-mallard-build"),
                "predictions": outputs.to_pylist(),
            }
        )
        return
    print_json(response.json())
