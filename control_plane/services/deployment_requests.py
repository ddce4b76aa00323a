"""A deploy request's values, checked before the database is touched (InvalidInput naming the field)."""

from __future__ import annotations

from typing import Any

from shared import serving as contract
from shared.errors import InvalidInput
from shared.serving import DEFAULT_BATCH_ROWS

MAX_TIMEOUT_MS = 600_000


def validate_request(
    *,
    kind: str,
    variation: str,
    weight: int | None,
    replicas: int | None,
    runtime: str | None,
    timeout_ms: int | None,
    batch: dict[str, Any] | None,
    streaming: dict[str, Any] | None,
) -> None:
    """Check a deploy request's values before touching the database (InvalidInput naming the field)."""
    if kind not in {k.value for k in contract.DeploymentKind}:
        raise InvalidInput(f"kind must be one of {', '.join(contract.DeploymentKind)}, got {kind!r}", field="kind")
    if not contract.VARIATION_NAME.match(variation):
        raise InvalidInput(
            f"variation {variation!r} is not valid; use lowercase letters, digits and '-' (up to 63)",
            field="variation",
        )
    if weight is not None and not 0 <= weight <= 100:
        raise InvalidInput(f"weight must be between 0 and 100, got {weight}", field="weight")
    if replicas is not None and not 1 <= replicas <= contract.MAX_REPLICAS:
        raise InvalidInput(f"replicas must be between 1 and {contract.MAX_REPLICAS}, got {replicas}", field="replicas")
    if runtime is not None and runtime not in {r.value for r in contract.Runtime}:
        raise InvalidInput(f"runtime must be one of {', '.join(contract.Runtime)}, got {runtime!r}", field="runtime")
    if timeout_ms is not None and not 1 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise InvalidInput(f"timeout_ms must be between 1 and {MAX_TIMEOUT_MS}", field="timeout_ms")
    if kind == contract.DeploymentKind.BATCH:
        _check_batch(batch)
    elif batch is not None:
        raise InvalidInput("batch settings are only for kind batch", field="batch")
    if kind == contract.DeploymentKind.STREAMING:
        _check_streaming(streaming)
    elif streaming is not None:
        raise InvalidInput("streaming settings are only for kind streaming", field="streaming")


def _check_batch(batch: dict[str, Any] | None) -> None:
    if batch is None:
        raise InvalidInput("a batch deployment needs batch.input and batch.output", field="batch")
    for key in ("input", "output"):
        value = batch.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > 1000:
            raise InvalidInput(
                f"batch.{key} must be a Parquet path, directory or s3://bucket/prefix (up to 1000 characters)",
                field="batch",
            )
    rows = batch.get("batch_rows", DEFAULT_BATCH_ROWS)
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= 10_000_000:
        raise InvalidInput("batch.batch_rows must be an integer between 1 and 10000000", field="batch")


def _check_streaming(streaming: dict[str, Any] | None) -> None:
    if streaming is None:
        raise InvalidInput(
            "a streaming deployment needs streaming.redis_url, input_stream, output_stream and group",
            field="streaming",
        )
    url = streaming.get("redis_url")
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://")) or len(url) > 500:
        raise InvalidInput("streaming.redis_url must be a redis:// or rediss:// URL", field="streaming")
    for key in ("input_stream", "output_stream", "group"):
        value = streaming.get(key)
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise InvalidInput(f"streaming.{key} must be a name of 1-200 characters", field="streaming")
