"""The one error root. Each transport translates it once (a FastAPI handler, a gRPC abort)."""

from __future__ import annotations

from typing import Any

import grpc


class MallardError(Exception):
    """Base of every error Mallard raises on purpose; carries its HTTP and gRPC status."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    code = "bad_request"
    non_retryable = True

    def __init__(self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(MallardError):
    """The request was well-formed but a value in it is not acceptable."""

    http_status = 422
    code = "invalid_input"


class Unauthenticated(MallardError):
    """No credential, or a credential that is unknown, expired or revoked."""

    http_status = 401
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    code = "unauthenticated"


class PermissionDenied(MallardError):
    """The caller is known but its role does not allow this action."""

    http_status = 403
    grpc_code = grpc.StatusCode.PERMISSION_DENIED
    code = "permission_denied"


class NotFound(MallardError):
    """The object does not exist, or belongs to another tenant."""

    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    code = "not_found"


class Conflict(MallardError):
    """The object already exists or is in a state that forbids the change."""

    http_status = 409
    grpc_code = grpc.StatusCode.ALREADY_EXISTS
    code = "conflict"


class Unavailable(MallardError):
    """A dependency could not be reached; retrying later may succeed."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE
    code = "unavailable"
    non_retryable = False


class PredictionTimeout(MallardError):
    """A prediction did not finish within its deadline (the request's timeout or the deployment's)."""

    http_status = 504
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED
    code = "prediction_timeout"
    non_retryable = False


class ModelFailed(MallardError):
    """The model's own `predict()` raised (or its server answered with an error) for this input."""

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
    code = "model_failed"
