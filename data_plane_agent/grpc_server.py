"""The data plane's gRPC server (127.0.0.1:8711 by default): the prediction service, and any
other data-plane service registered with it (e.g. online features).

Every call carries the same short-lived data-plane JWT as the REST API, in the
`authorization: Bearer <jwt>` metadata entry; the interceptor verifies it offline before any
servicer runs, so services never handle authentication themselves.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from grpc import aio

from data_plane_agent.api.tokens import TokenVerifier
from data_plane_agent.settings import AgentSettings
from shared.errors import MallardError

log = logging.getLogger("mallard.grpc")

# A service's `add_XServicer_to_server` bound to its servicer: `lambda server: add_...(servicer, server)`.
ServiceRegistration = Callable[[aio.Server], None]


class AuthInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses a call with UNAUTHENTICATED / PERMISSION_DENIED unless its JWT verifies."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        metadata = {key: value for key, value in (details.invocation_metadata or ())}
        header = metadata.get("authorization")
        try:
            self.verifier.verify_header(header if isinstance(header, str) else None)
        except MallardError as exc:
            return _refusal(handler, exc)
        return handler


def _refusal(handler: grpc.RpcMethodHandler, exc: MallardError) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only aborts with `exc`'s status."""

    async def unary(_request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(exc.grpc_code, exc.message)

    async def streaming(_request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(exc.grpc_code, exc.message)
        yield  # pragma: no cover  (makes this an async generator)

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary or handler.stream_unary:
        make = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
        return make(unary, **kwargs)
    make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return make(streaming, **kwargs)


class DataPlaneGrpcServer:
    """`await start()` binds `host:port` (port 0: any free port) and returns the port; `stop()` drains."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        services: list[ServiceRegistration],
        host: str = "127.0.0.1",
        port: int = 8711,
        max_message_bytes: int = 17 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.verifier = verifier
        self.services = services
        self.max_message_bytes = max_message_bytes
        self._server: aio.Server | None = None

    async def start(self) -> int:
        server = aio.server(
            interceptors=[AuthInterceptor(self.verifier)],
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        for register in self.services:
            register(server)
        try:
            bound = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError as exc:
            bound = 0
            log.debug("bind failed: %s", exc)
        if not bound:
            raise OSError(f"cannot listen on {self.host}:{self.port} for the data-plane gRPC API (port in use?)")
        await server.start()
        self._server, self.port = server, bound
        return bound

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop taking calls and let running ones finish for up to `grace_seconds`. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace_seconds)


@asynccontextmanager
async def grpc_server(
    *, verifier: TokenVerifier, services: list[ServiceRegistration], host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[tuple[DataPlaneGrpcServer, int]]:
    """A started server and its port, stopped on exit (tests bind port 0)."""
    server = DataPlaneGrpcServer(verifier=verifier, services=services, host=host, port=port)
    bound = await server.start()
    try:
        yield server, bound
    finally:
        await server.stop(1.0)


async def start_data_plane_grpc(
    settings: AgentSettings, *, verifier: TokenVerifier, services: list[ServiceRegistration]
) -> DataPlaneGrpcServer | None:
    """The agent's gRPC API on `data_plane_host:data_plane_grpc_port` (None when the port is 0).

    A port that cannot be bound is logged as an error and the agent carries on with REST only,
    rather than refusing to serve at all.
    """
    if not settings.data_plane_grpc_port:
        return None
    server = DataPlaneGrpcServer(
        verifier=verifier,
        services=services,
        host=settings.data_plane_host,
        port=settings.data_plane_grpc_port,
        max_message_bytes=settings.predict_max_bytes + 1024 * 1024,
    )
    try:
        port = await server.start()
    except OSError as exc:
        log.error("%s; predictions are served over REST only", exc)
        return None
    log.info("data plane gRPC API on %s:%d", settings.data_plane_host, port)
    return server
