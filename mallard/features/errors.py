"""The error a feature definition raises when it is malformed or does not match its data."""

from __future__ import annotations


class FeatureDefinitionError(ValueError):
    """A definition is malformed, or does not match its data; `definition` and `field` name the culprit.

    The SDK stays importable without server packages, so this is a `ValueError` (like
    `mallard.SchemaError`); the data plane and control plane translate it to
    `shared.errors.InvalidInput` (HTTP 422) at their boundary, keeping `field`.
    """

    http_status = 422
    code = "invalid_feature_definition"

    def __init__(self, message: str, *, definition: str | None = None, field: str | None = None) -> None:
        prefix = f"{definition}: " if definition else ""
        super().__init__(prefix + message)
        self.message = prefix + message
        self.definition = definition
        self.field = field
