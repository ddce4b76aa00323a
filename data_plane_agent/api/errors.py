"""The data plane's error answer, `{"error": {...}}` with the error's HTTP status, for FastAPI's
exception handler and for the routes served ahead of it (GatewayApp)."""

from __future__ import annotations

from starlette.responses import JSONResponse

from shared.errors import MallardError


def error_response(exc: MallardError, headers: dict[str, str] | None = None) -> JSONResponse:
    """`exc` as JSON; a 401 also says which scheme to use (`WWW-Authenticate: Bearer`)."""
    headers = dict(headers or {})
    if exc.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers or None)
