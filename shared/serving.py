"""The serving contract shared by both planes: deployment commands, status and metrics events.

The control plane stores a deployment's desired state and sends it whole in a
`deployment.apply` command (idempotent: the agent reconciles to it, whatever it ran before);
`deployment.delete` stops it. The agent reports with `deployment.status` events and, once a
minute per model and variation, a `serving.metrics` event of aggregates. Prediction inputs and
outputs never travel: they stay in the data plane's inference lake.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, TypedDict

# ---- commands (control plane -> agent) --------------------------------------------------

APPLY_COMMAND = "deployment.apply"
DELETE_COMMAND = "deployment.delete"

# ---- events (agent -> control plane) ----------------------------------------------------

STATUS_EVENT = "deployment.status"
METRICS_EVENT = "serving.metrics"

DEPLOYMENT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
VARIATION_NAME = DEPLOYMENT_NAME
MAX_VARIATIONS = 10
MAX_REPLICAS = 16


class DeploymentKind(StrEnum):
    REALTIME = "realtime"
    BATCH = "batch"
    STREAMING = "streaming"


class Runtime(StrEnum):
    LOCAL = "local"  # a process in the build's virtualenv (embedded default)
    DOCKER = "docker"  # a container of the build's image, host network, bound to 127.0.0.1


class DeploymentState(StrEnum):
    PENDING = "PENDING"  # accepted, nothing ready yet
    ROLLING = "ROLLING"  # replacing replicas one by one
    RUNNING = "RUNNING"  # every desired replica ready (realtime, streaming) / job running (batch)
    DEGRADED = "DEGRADED"  # serving, but fewer ready replicas than desired (a crash being restarted)
    SUCCEEDED = "SUCCEEDED"  # batch job finished
    FAILED = "FAILED"
    STOPPED = "STOPPED"  # undeployed

    @property
    def final(self) -> bool:
        return self in (DeploymentState.SUCCEEDED, DeploymentState.FAILED, DeploymentState.STOPPED)


class VariationSpec(TypedDict):
    """One build behind a deployment. Weights of non-shadow variations are relative (80/20)."""

    name: str  # "default" unless --variation
    build_id: str
    artifact_digest: str  # "sha256:<hex>", fetched from the data-plane store
    image: str | None  # the build's Docker image, for the docker runtime
    weight: int  # 0..100; ignored for shadow variations
    shadow: bool  # mirrored: answers logged, never returned
    replicas: int


# Rows per batch of a batch job unless the deployment says otherwise. Each batch is one predict()
# call and one part file: 50,000 rows of 20 float features are about 8 MB, large enough that the
# per-batch costs (the replica round trip, a part file's footer and fsync) are a few percent of
# predicting it, small enough that a job holds only a few batches in memory.
DEFAULT_BATCH_ROWS = 50_000


class BatchSpec(TypedDict):
    input: str  # Parquet file, directory, or s3://bucket/prefix
    output: str  # directory or s3://bucket/prefix; part files are written there
    batch_rows: int


class StreamingSpec(TypedDict):
    redis_url: str
    input_stream: str
    output_stream: str
    group: str


class ApplySpec(TypedDict, total=False):
    """`deployment.apply` command spec: the whole desired state, versioned by `revision`."""

    deployment_id: str
    name: str
    model: str
    model_id: str
    project_id: str
    kind: str  # DeploymentKind
    runtime: str  # Runtime
    revision: int  # increases with every change; the agent ignores an older revision
    logging: bool  # inference-lake logging on/off for this model
    timeout_ms: int  # per-request prediction timeout
    variations: list[VariationSpec]
    batch: BatchSpec | None
    streaming: StreamingSpec | None


class ReplicaStatus(TypedDict):
    variation: str
    build_id: str
    ready: bool
    restarts: int


class StatusPayload(TypedDict, total=False):
    """`deployment.status` event payload (metadata only)."""

    deployment_id: str
    revision: int
    state: str  # DeploymentState
    message: str  # short, may say why (error summary, <= 500 chars)
    replicas: list[ReplicaStatus]
    rows_done: int  # batch progress
    rows_total: int | None
    lag: int  # streaming: entries not yet delivered to the consumer group
    at: str  # ISO-8601 UTC


class MetricsPayload(TypedDict):
    """`serving.metrics` event payload: one minute of one model variation (aggregates only)."""

    deployment_id: str
    model: str
    variation: str
    build_id: str
    minute: str  # ISO-8601 UTC, start of the minute
    count: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


def check_apply_spec(spec: dict[str, Any]) -> list[str]:
    """Problems with an apply spec, as sentences naming the field (empty when it is valid)."""
    problems: list[str] = []
    if not isinstance(spec.get("deployment_id"), str) or not spec.get("deployment_id"):
        problems.append("deployment_id is required")
    if spec.get("kind") not in {k.value for k in DeploymentKind}:
        problems.append(f"kind must be one of {', '.join(DeploymentKind)}, got {spec.get('kind')!r}")
    if spec.get("runtime", Runtime.LOCAL) not in {r.value for r in Runtime}:
        problems.append(f"runtime must be one of {', '.join(Runtime)}, got {spec.get('runtime')!r}")
    variations = spec.get("variations")
    if not isinstance(variations, list) or not variations:
        problems.append("variations must be a non-empty list")
        return problems
    for i, v in enumerate(variations):
        if not isinstance(v, dict):
            problems.append(f"variations[{i}] must be an object")
            continue
        if not isinstance(v.get("build_id"), str) or not v.get("build_id"):
            problems.append(f"variations[{i}].build_id is required")
        if not isinstance(v.get("artifact_digest"), str) or not str(v.get("artifact_digest")).startswith("sha256:"):
            problems.append(f"variations[{i}].artifact_digest must be a sha256 digest")
        replicas = v.get("replicas", 1)
        if not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS:
            problems.append(f"variations[{i}].replicas must be an integer 0..{MAX_REPLICAS}")
    if not any(isinstance(v, dict) and not v.get("shadow") and v.get("weight", 0) > 0 for v in variations):
        problems.append("at least one variation must be live (not shadow) with a weight above 0")
    return problems
