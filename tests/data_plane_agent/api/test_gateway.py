"""The prediction gateway over real HTTP and gRPC on 127.0.0.1, in front of the real serving
engine with replica processes of a toy model (y = 2x): every input form, and bad input of every
kind answered with a clear 4xx / gRPC status naming the field, the server staying healthy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pyarrow as pa
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from data_plane_agent.api.app import create_app
from data_plane_agent.api.inputs import InputLimits, write_arrow_stream
from data_plane_agent.api.tokens import TokenVerifier
from data_plane_agent.grpc_predict import PredictionServicer, columns_to_table, table_to_columns
from data_plane_agent.grpc_server import grpc_server
from data_plane_agent.lake.records import PredictionRecord
from data_plane_agent.link.client import LinkState
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.storage import LocalObjectStore
from shared.jwt_tokens import sign
from shared.protos.mallard.v1 import prediction_pb2, prediction_pb2_grpc
from tests.data_plane_agent.serving.helpers import apply_spec, state_of, toy_artifact, toy_engine, until, variation
from tests.helpers.servers import free_port

TENANT = "ten_gateway"
LIMITS = InputLimits(max_rows=1000, max_bytes=256 * 1024)
ARROW = "application/vnd.apache.arrow.stream"


@dataclass
class Gateway:
    url: str
    grpc_address: str
    token: str
    records: list[PredictionRecord]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    home = AgentHome(tmp_path / "agent")
    home.prepare()
    home.identity_file.write_text(json.dumps({"tenant_id": TENANT, "agent_id": "agt_gw"}))
    home.jwt_public_key.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    store = LocalObjectStore(tmp_path / "store")
    engine, records = toy_engine(tmp_path / "serving-home", store, None)
    await engine.start()
    fast = toy_artifact(store, tmp_path, "bld_fast")
    slow = toy_artifact(store, tmp_path, "bld_slow", delay=1.0)
    await engine.apply(apply_spec("dep_toy", [variation("default", "bld_fast", fast)]))
    await engine.apply(apply_spec("dep_slow", [variation("default", "bld_slow", slow)], model="slow", name="slow"))
    await until(lambda: state_of(engine, "dep_toy") == state_of(engine, "dep_slow") == "RUNNING", what="RUNNING")
    app = create_app(home, LinkState(), engine=engine, predict_limits=LIMITS)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    setattr(server, "install_signal_handlers", lambda: None)  # noqa: B010
    serving = asyncio.create_task(server.serve())
    await until(lambda: server.started, what="uvicorn")
    verifier = TokenVerifier(home.jwt_public_key, tenant_id=TENANT)
    try:
        async with grpc_server(verifier=verifier, services=[PredictionServicer(engine, LIMITS).add_to_server]) as (
            _grpc,
            grpc_port,
        ):
            token = sign(private, subject="usr_1", tenant_id=TENANT, role="member", ttl_seconds=300)
            yield Gateway(f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", token, records)
    finally:
        server.should_exit = True
        await serving
        await engine.shutdown(5)


async def _healthy(gw: Gateway, client: httpx.AsyncClient) -> None:
    response = await client.post(f"{gw.url}/v1/models/toy/predict", headers=gw.headers, json={"records": [{"x": 4}]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [{"y": 8.0}]


async def test_rest_answers_in_the_form_it_was_asked(gateway: Gateway) -> None:
    gw = gateway
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{gw.url}/v1/models/toy/predict"
        response = await client.post(
            url, headers={**gw.headers, "X-Request-Id": "req-42"}, json={"records": [{"x": 1.5}, {"x": 2}]}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["predictions"] == [{"y": 3.0}, {"y": 4.0}]
        assert (body["request_id"], body["variation"], body["build_id"]) == ("req-42", "default", "bld_fast")
        assert response.headers["x-request-id"] == "req-42"
        assert (response.headers["x-mallard-variation"], response.headers["x-mallard-build"]) == ("default", "bld_fast")

        response = await client.post(url, headers=gw.headers, json={"columns": {"x": [1, 2, 3]}})
        assert response.json()["columns"] == {"y": [2.0, 4.0, 6.0]}
        generated = response.headers["x-request-id"]
        assert len(generated) == 32 and generated == response.json()["request_id"]

        arrow = write_arrow_stream(pa.table({"x": pa.array([0.25], pa.float32())}))
        response = await client.post(url, headers={**gw.headers, "Content-Type": ARROW}, content=arrow)
        assert response.status_code == 200 and response.headers["content-type"] == ARROW
        with pa.ipc.open_stream(response.content) as reader:
            assert reader.read_all().column("y").to_pylist() == [0.5]

        schema = (await client.get(f"{gw.url}/v1/models/toy/schema", headers=gw.headers)).json()
        assert schema["inputs"] == [{"name": "x", "type": "float", "nullable": False}]
        local = (await client.get(f"{gw.url}/v1/deployments", headers=gw.headers)).json()
        assert {d["deployment_id"] for d in local} == {"dep_toy", "dep_slow"}
    assert {r.request_id for r in gw.records} >= {"req-42", generated}


async def test_rest_bad_input_is_a_clear_4xx_and_the_server_stays_healthy(gateway: Gateway) -> None:
    gw = gateway
    url = f"{gw.url}/v1/models/toy/predict"
    json_header = {**gw.headers, "Content-Type": "application/json"}
    cases: list[tuple[str, dict, int, str]] = [
        ("wrong type", {"json": {"records": [{"x": "one"}]}}, 422, "x"),
        ("a bool for a float", {"json": {"records": [{"x": True}]}}, 422, "x"),
        ("missing field", {"json": {"records": [{}]}}, 422, "x"),
        ("extra field", {"json": {"records": [{"x": 1, "customer_id": 7}]}}, 422, "customer_id"),
        ("null", {"json": {"columns": {"x": [None]}}}, 422, "x"),
        ("no rows", {"json": {"records": []}}, 422, "records"),
        ("too many rows", {"json": {"records": [{"x": 1}] * 1001}}, 422, "records"),
        ("huge body", {"content": b"{" + b" " * (300 * 1024) + b"}", "headers": json_header}, 422, "body"),
        ("not JSON", {"content": b'{"records": [', "headers": json_header}, 422, "body"),
        ("wrong shape", {"json": [{"x": 1}]}, 422, "body"),
        (
            "malformed Arrow",
            {"content": b"\x00garbage" * 10, "headers": {**gw.headers, "Content-Type": ARROW}},
            422,
            "body",
        ),
        (
            "other content type",
            {"content": b"x=1", "headers": {**gw.headers, "Content-Type": "text/csv"}},
            422,
            "Content-Type",
        ),
        (
            "bad request id",
            {"json": {"records": [{"x": 1}]}, "headers": {**gw.headers, "X-Request-Id": "a b"}},
            422,
            "X-Request-Id",
        ),
        (
            "bad timeout",
            {"json": {"records": [{"x": 1}]}, "headers": {**gw.headers, "X-Mallard-Timeout-Ms": "soon"}},
            422,
            "X-Mallard-Timeout-Ms",
        ),
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        for what, kwargs, status, field in cases:
            kwargs.setdefault("headers", gw.headers)
            response = await client.post(url, **kwargs)
            assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
            error = response.json()["error"]
            assert error["field"] == field, f"{what}: {error}"
            assert field in error["message"] or field in ("body", "records"), f"{what}: {error}"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the size is counted as it arrives
            for _ in range(40):
                yield b" " * 8192

        streamed = await client.post(url, headers=json_header, content=chunks())
        assert streamed.status_code == 422 and streamed.json()["error"]["field"] == "body"
        unknown = await client.post(f"{gw.url}/v1/models/nope/predict", headers=gw.headers, json={"records": [{}]})
        assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "model"
        anonymous = await client.post(url, json={"records": [{"x": 1}]})
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        forged = await client.post(url, headers={"Authorization": "Bearer e30.e30.sig"}, json={"records": [{"x": 1}]})
        assert forged.status_code == 401
        failing = await client.post(url, headers=gw.headers, json={"records": [{"x": -1}]})
        assert failing.status_code == 500 and failing.json()["error"]["code"] == "model_failed"
        slow = f"{gw.url}/v1/models/slow/predict"
        late = await client.post(
            slow, headers={**gw.headers, "X-Mallard-Timeout-Ms": "100"}, json={"records": [{"x": 1}]}
        )
        assert late.status_code == 504 and late.json()["error"]["code"] == "prediction_timeout"
        await _healthy(gw, client)
        assert (await client.get(f"{gw.url}/v1/health")).json()["status"] == "ok"


def _grpc_call(gw: Gateway, request: prediction_pb2.PredictRequest, *, token: str | None = None) -> object:
    with grpc.insecure_channel(gw.grpc_address) as channel:
        stub = prediction_pb2_grpc.PredictionServiceStub(channel)
        metadata = (("authorization", f"Bearer {token if token is not None else gw.token}"),)
        try:
            return stub.Predict(request, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc


def _status(result: object) -> tuple[grpc.StatusCode, str | None]:
    assert isinstance(result, grpc.RpcError), result
    field = dict(result.trailing_metadata() or ()).get("mallard-field")  # type: ignore[attr-defined]
    return result.code(), field  # type: ignore[attr-defined]


async def test_grpc_predicts_with_arrow_and_typed_columns_and_refuses_bad_input(gateway: Gateway) -> None:
    gw = gateway

    def calls() -> None:
        arrow = write_arrow_stream(pa.table({"x": [1.0, 2.0]}))
        answer = _grpc_call(gw, prediction_pb2.PredictRequest(model="toy", request_id="g-1", arrow_ipc=arrow))
        assert isinstance(answer, prediction_pb2.PredictResponse), answer
        with pa.ipc.open_stream(answer.arrow_ipc) as reader:
            assert reader.read_all().column("y").to_pylist() == [2.0, 4.0]
        assert (answer.request_id, answer.variation, answer.build_id) == ("g-1", "default", "bld_fast")
        columns = table_to_columns(pa.table({"x": pa.array([3], pa.int64())}))
        answer = _grpc_call(gw, prediction_pb2.PredictRequest(model="toy", columns=columns))
        assert isinstance(answer, prediction_pb2.PredictResponse), answer
        assert columns_to_table(answer.columns).column("y").to_pylist() == [6.0] and answer.request_id

        def request(**kwargs: object) -> prediction_pb2.PredictRequest:
            return prediction_pb2.PredictRequest(model="toy", **kwargs)  # type: ignore[arg-type]

        wrong = table_to_columns(pa.table({"x": ["one"]}))
        extra = table_to_columns(pa.table({"x": [1.0], "extra": [1.0]}))
        StatusCode = grpc.StatusCode
        cases = [
            (request(columns=wrong), (StatusCode.INVALID_ARGUMENT, "x")),
            (request(columns=extra), (StatusCode.INVALID_ARGUMENT, "extra")),
            (request(columns=table_to_columns(pa.table({"y": [1.0]}))), (StatusCode.INVALID_ARGUMENT, "y")),
            (request(arrow_ipc=b"\x00not arrow"), (StatusCode.INVALID_ARGUMENT, "body")),
            (request(), (StatusCode.INVALID_ARGUMENT, "input")),
            (request(arrow_ipc=arrow, request_id="has spaces"), (StatusCode.INVALID_ARGUMENT, "X-Request-Id")),
            (prediction_pb2.PredictRequest(model="nope", arrow_ipc=arrow), (StatusCode.NOT_FOUND, "model")),
            (request(arrow_ipc=write_arrow_stream(pa.table({"x": [-1.0]}))), (StatusCode.INTERNAL, None)),
            (request(arrow_ipc=b"\x00" * (300 * 1024)), (StatusCode.INVALID_ARGUMENT, "arrow_ipc")),
        ]
        for call, expected in cases:
            assert _status(_grpc_call(gw, call)) == expected, call
        slow = prediction_pb2.PredictRequest(model="slow", arrow_ipc=arrow, timeout_ms=100)
        assert _status(_grpc_call(gw, slow))[0] == StatusCode.DEADLINE_EXCEEDED
        assert _status(_grpc_call(gw, request(arrow_ipc=arrow), token=""))[0] == StatusCode.UNAUTHENTICATED
        assert _status(_grpc_call(gw, request(arrow_ipc=arrow), token="e30.e30.x"))[0] == StatusCode.UNAUTHENTICATED
        huge = request(arrow_ipc=b"\x00" * (20 * 1024 * 1024))
        assert _status(_grpc_call(gw, huge))[0] == StatusCode.RESOURCE_EXHAUSTED
        assert isinstance(_grpc_call(gw, request(arrow_ipc=arrow)), prediction_pb2.PredictResponse)

    await asyncio.to_thread(calls)  # a blocking client, off the loop the servers run on
    async with httpx.AsyncClient(timeout=30) as client:
        await _healthy(gw, client)
