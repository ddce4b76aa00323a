"""The one place HTTP errors are shaped: every error body is {"error": {"code", "message", "field"?}}."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import Conflict, InvalidInput, MallardError, Unavailable

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 5
_SOURCES = {"body", "query", "path", "header", "cookie"}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated", 403: "permission_denied"}
# "UNIQUE constraint failed: project.tenant_id, project.name" (SQLite) and
# "Key (tenant_id, name)=(...) already exists" (PostgreSQL): the last column names the field.
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<cols>[\w., ]+)")
_POSTGRES_UNIQUE = re.compile(r"Key \((?P<cols>[\w, ]+)\)=")


def error_response(error: MallardError) -> JSONResponse:
    return JSONResponse({"error": error.to_dict()}, status_code=error.http_status)


async def _mallard_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MallardError)
    return error_response(exc)


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """(field, sentence) for one pydantic error."""
    loc = [str(part) for part in error.get("loc", ())]
    source = loc[0] if loc and loc[0] in _SOURCES else "body"
    path = loc[1:] if loc and loc[0] in _SOURCES else loc
    kind = error.get("type", "")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return "body", f"request body is not valid JSON ({reason})" if reason else "request body is not valid JSON"
    # Only the top-level name: pydantic appends union member names ("str", "int") to the path.
    field = path[0] if path else source
    if not path:
        if kind == "missing":
            return field, f"the request {source} is required"
        return field, f"the request {source} must be a JSON object: {error.get('msg', '')}"
    if kind == "missing":
        return field, f"{field} is required"
    if kind == "extra_forbidden":
        return field, f"{field} is not a known field"
    return field, f"{field}: {error.get('msg', 'invalid value')}"


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    described = [_describe(dict(err)) for err in exc.errors()]
    if not described:
        described = [("body", "the request is not valid")]
    sentences = list(dict.fromkeys(message for _, message in described))
    error = InvalidInput(
        "; ".join(sentences[:MAX_REPORTED_ERRORS]),
        field=described[0][0],
        details={"errors": [{"field": field, "message": message} for field, message in described]}
        if len(described) > 1
        else None,
    )
    return error_response(error)


def _unique_field(exc: IntegrityError) -> str | None:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    match = _SQLITE_UNIQUE.search(text) or _POSTGRES_UNIQUE.search(text)
    if not match:
        return None
    last = match["cols"].split(",")[-1].strip()
    return last.rsplit(".", 1)[-1]


async def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # Services turn the constraints they expect into Conflict; this is the safety net for the
    # rest, so a duplicate is a 409 naming the field, never a 500.
    assert isinstance(exc, IntegrityError)
    field = _unique_field(exc)
    log.warning("integrity error reached the API: %s", exc.orig)
    message = f"a conflicting {field} already exists" if field else "the change conflicts with existing data"
    return error_response(Conflict(message, field=field))


async def _operational_error(_request: Request, exc: Exception) -> JSONResponse:
    # Lock timeouts, deadlocks and lost connections: the request changed nothing and may be retried.
    log.warning("database error reached the API: %s", exc)
    return error_response(Unavailable("the database is busy or unreachable; retry shortly"))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}; see /docs"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs"
    else:
        message = str(exc.detail)
    body = {"error": {"code": _HTTP_CODES.get(exc.status_code, "http_error"), "message": message}}
    return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    body = {"error": {"code": "internal", "message": "internal error; the control plane logged the details"}}
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MallardError, _mallard_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(OperationalError, _operational_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
