"""The build contract shared by both planes: command specs, phases, and event payloads.

The control plane sends `build.run` / `build.cancel` commands over the agent link; the agent
reports progress with `build.*` events from its outbox. Only metadata travels: ids, phases,
timestamps, params, metrics, digests and data-plane URIs, and a short error summary. Contexts,
artifacts and full logs stay in the data plane's object store.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypedDict

# ---- commands (control plane -> agent) --------------------------------------------------

RUN_COMMAND = "build.run"
CANCEL_COMMAND = "build.cancel"

# ---- events (agent -> control plane) ----------------------------------------------------

PHASE_EVENT = "build.phase"  # a phase started / finished
FINISHED_EVENT = "build.finished"  # final status, params, metrics, artifact

ERROR_SUMMARY_MAX = 500  # characters of error text allowed to cross the boundary
MAX_PARAMS = 100
MAX_METRICS = 200


class BuildStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def final(self) -> bool:
        return self in (BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.CANCELLED)


class BuildPhase(StrEnum):
    FETCH_CONTEXT = "fetch_context"
    RESOLVE_DEPENDENCIES = "resolve_dependencies"
    TRAIN = "train"
    TEST = "test"
    PACKAGE = "package"
    PUBLISH = "publish"


PHASES: tuple[BuildPhase, ...] = tuple(BuildPhase)


class Builder(StrEnum):
    LOCAL = "local"
    DOCKER = "docker"


class RunSpec(TypedDict):
    """`build.run` command spec."""

    build_id: str
    tenant_id: str
    model: str  # model name
    context_digest: str  # "sha256:<hex>" of the uploaded context archive in the agent's store
    builder: str  # Builder value
    params: dict[str, str]  # --param k=v overrides, merged over mallard.yaml params
    tags: list[str]


class CancelSpec(TypedDict):
    build_id: str


class PhasePayload(TypedDict):
    """`build.phase`: state is 'started' | 'succeeded' | 'failed' | 'cancelled'."""

    build_id: str
    phase: str
    state: str
    at_unix_ms: int


class FinishedPayload(TypedDict, total=False):
    build_id: str
    status: str  # BuildStatus
    failed_phase: str | None
    error_summary: str | None  # <= ERROR_SUMMARY_MAX chars, explicitly flagged as crossing
    params: dict[str, str]
    metrics: dict[str, float]
    artifact_digest: str | None  # "sha256:<hex>"
    artifact_uri: str | None  # data-plane URI, e.g. "mallard-store://artifacts/sha256/<hex>.tar.gz"
    image: str | None  # docker builder: image tag
    duration_seconds: float


def summarize_error(text: str) -> str:
    """The last lines of an error, cut to what may cross the boundary."""
    text = text.strip()
    if len(text) <= ERROR_SUMMARY_MAX:
        return text
    return "…" + text[-(ERROR_SUMMARY_MAX - 1) :]


def clean_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Only finite numbers with short names cross the boundary as metrics."""
    out: dict[str, float] = {}
    for name, value in list(metrics.items())[:MAX_METRICS]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        number = float(value)
        if number == number and abs(number) != float("inf"):
            out[str(name)[:100]] = number
    return out


def clean_params(params: dict[str, Any]) -> dict[str, str]:
    return {str(k)[:100]: str(v)[:500] for k, v in list(params.items())[:MAX_PARAMS]}
