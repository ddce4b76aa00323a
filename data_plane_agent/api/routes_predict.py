"""The prediction gateway's REST front: `POST /v1/models/{model}/predict`, the model's schema
and the agent-local view of deployments.

The predict route is a plain Starlette endpoint, not a FastAPI one: no dependency injection or
response-model machinery on the hot path (it is benchmarked against a bare endpoint). `GatewayApp`
serves it ahead of FastAPI's middleware and exception stack too: the endpoint answers every error
itself (JSON, the same headers), so nothing in that stack has work to do for it. Bodies:
`{"records": [...]}`, `{"columns": {...}}` (answered in the same JSON form) or
`Content-Type: application/vnd.apache.arrow.stream` (answered as an Arrow IPC stream).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from data_plane_agent.api.errors import error_response
from data_plane_agent.api.inputs import (
    InputLimits,
    InputSchema,
    answer_json,
    outputs_json,
    read_arrow_stream,
    write_arrow_stream,
)
from data_plane_agent.api.tokens import TokenVerifier
from data_plane_agent.serving import ServingEngine
from mallard.schema import ModelSchema
from shared.errors import InvalidInput, MallardError
from shared.jwt_tokens import DataPlaneClaims

log = logging.getLogger("mallard.gateway")

ARROW_STREAM = "application/vnd.apache.arrow.stream"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_TIMEOUT_MS = 600_000
PREDICT_PATH = "/v1/models/{model}/predict"
PREDICT_PATH_RE = re.compile(r"^/v1/models/(?P<model>[^/]+)/predict$")  # `{model}` as Starlette matches it


def request_id_from(value: str | None) -> str:
    """The caller's request id, or a new one (32 random hex digits, as a uuid4's hex but without
    building a UUID); InvalidInput when the caller's is unusable."""
    if not value:
        return os.urandom(16).hex()
    if not REQUEST_ID.match(value):
        raise InvalidInput("X-Request-Id must be 1-128 characters of letters, digits and . _ : -", field="X-Request-Id")
    return value


def timeout_from(value: str | None, *, field: str = "X-Mallard-Timeout-Ms") -> float | None:
    if not value:
        return None
    try:
        ms = int(value)
    except ValueError:
        ms = 0
    if not 1 <= ms <= MAX_TIMEOUT_MS:
        raise InvalidInput(f"{field} must be a whole number of milliseconds, 1-{MAX_TIMEOUT_MS}", field=field)
    return ms / 1000


class InputSchemas:
    """Compiled input checks per model, recompiled when the served schema changes (a redeploy)."""

    def __init__(self, engine: ServingEngine, limits: InputLimits) -> None:
        self.engine = engine
        self.limits = limits
        self._compiled: dict[str, tuple[ModelSchema, InputSchema]] = {}

    def get(self, model: str) -> InputSchema:
        schema = self.engine.schema(model)  # NotFound when nothing serves it
        cached = self._compiled.get(model)
        if cached is not None and (cached[0] is schema or cached[0] == schema):
            return cached[1]
        compiled = InputSchema(schema, self.limits)
        self._compiled[model] = (schema, compiled)
        return compiled


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise InvalidInput(f"the body is {declared} bytes; at most {max_bytes} are accepted", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise InvalidInput(f"the body is larger than {max_bytes} bytes", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


def predict_endpoint(
    engine: ServingEngine, verifier: TokenVerifier, limits: InputLimits
) -> Callable[[Request], Awaitable[Response]]:
    schemas = InputSchemas(engine, limits)

    async def predict(request: Request) -> Response:
        request_id = ""
        try:
            verifier.verify_header(request.headers.get("authorization"))
            request_id = request_id_from(request.headers.get("x-request-id"))
            model: str = request.path_params["model"]
            timeout_s = timeout_from(request.headers.get("x-mallard-timeout-ms"))
            inputs = schemas.get(model)
            body = await _read_body(request, limits.max_bytes)
            content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if content_type == ARROW_STREAM:
                table, form = inputs.from_arrow(read_arrow_stream(body)), "arrow"
            elif content_type in ("application/json", ""):
                table, form = inputs.from_json_body(body)
            else:
                raise InvalidInput(
                    f"Content-Type {content_type!r} is not supported; send application/json or {ARROW_STREAM}",
                    field="Content-Type",
                )
            outcome = await engine.predict(model, table, request_id=request_id, timeout_s=timeout_s)
        except MallardError as exc:
            return error_response(exc, {"X-Request-Id": request_id} if request_id else None)
        except Exception:
            log.exception("prediction %s failed unexpectedly", request_id)
            error = {"code": "internal", "message": "internal error; the agent logged the details"}
            return JSONResponse({"error": error}, status_code=500, headers={"X-Request-Id": request_id})
        headers = {
            "X-Request-Id": request_id,
            "X-Mallard-Deployment": outcome.deployment_id,
            "X-Mallard-Variation": outcome.variation,
            "X-Mallard-Build": outcome.build_id,
        }
        if form == "arrow":
            return Response(write_arrow_stream(outcome.outputs), media_type=ARROW_STREAM, headers=headers)
        answer = {
            "model": model,
            "request_id": request_id,
            "deployment_id": outcome.deployment_id,
            "variation": outcome.variation,
            "build_id": outcome.build_id,
            "latency_ms": round(outcome.latency_ms, 3),
            ("predictions" if form == "records" else "columns"): outputs_json(outcome.outputs, form),
        }
        return Response(answer_json(answer, outcome.outputs), media_type="application/json", headers=headers)

    return predict


class GatewayApp(FastAPI):
    """The data plane's FastAPI app, with `POST /v1/models/{model}/predict` and the POST routes in
    `fast_posts` (exact paths) dispatched before FastAPI's middleware and exception stack (other
    methods on those paths, and every other route, go through FastAPI as usual: the routes stay
    registered there too). Fast handlers answer their own errors."""

    predict: Callable[[Request], Awaitable[Response]] | None = None
    fast_posts: dict[str, Callable[[Request], Awaitable[Response]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast_posts.get(scope["path"]) if self.fast_posts else None
            if handler is not None:
                scope["app"] = self
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        if self.predict is not None and scope["type"] == "http" and scope["method"] == "POST":
            match = PREDICT_PATH_RE.match(scope["path"])
            if match is not None:
                scope["app"] = self
                scope["path_params"] = {"model": match["model"]}
                response = await self.predict(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def serving_router(*, engine: ServingEngine, claims: Callable[..., DataPlaneClaims]) -> APIRouter:
    router = APIRouter(tags=["serving"])

    @router.get("/v1/models/{model}/schema")
    def model_schema(model: str, c: DataPlaneClaims = Depends(claims)) -> dict[str, Any]:
        """The inputs and outputs of the model this agent serves under `model` (for `predict --example`)."""
        return {"model": model, **engine.schema(model).to_dict()}

    @router.get("/v1/deployments")
    def local_deployments(c: DataPlaneClaims = Depends(claims)) -> list[dict[str, Any]]:
        """Deployments as this agent runs them (works while the control plane is unreachable)."""
        return engine.deployments()

    return router
