"""The feature-store contract shared by both planes: command specs and event payloads.

The control plane keeps feature-set *definitions* (names, types, SQL text, schedules) and sends
them to the project's agent in a `features.apply` command; `features.materialize` asks the agent
to fill its offline and online stores. The agent reports `features.materialization` (job status
and progress) and `features.freshness` (last materialized time, row and key counts). Feature
values never travel: they stay in the data plane's offline and online stores.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Any, TypedDict

# ---- commands (control plane -> agent) --------------------------------------------------

APPLY_COMMAND = "features.apply"
MATERIALIZE_COMMAND = "features.materialize"

# ---- events (agent -> control plane) ----------------------------------------------------

MATERIALIZATION_EVENT = "features.materialization"
FRESHNESS_EVENT = "features.freshness"

FEATURE_SET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")  # as the SDK checks
FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
MAX_DEFINITION_BYTES = 256 * 1024
MAX_DEFINITIONS_PER_APPLY = 100
ERROR_SUMMARY_MAX = 500


class DefinitionKind(StrEnum):
    BATCH = "feature_set"  # FeatureSet: a batch source, materialized on a schedule or on demand
    STREAM = "stream_feature_set"  # StreamFeatureSet: windowed aggregations of a Redis Stream


class MaterializationStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self in (MaterializationStatus.SUCCEEDED, MaterializationStatus.FAILED)


class DefinitionSpec(TypedDict):
    """One registered definition as the agent receives it."""

    project: str  # project name (namespaces the stores: tenant/project/set/version)
    name: str
    version: int
    kind: str  # DefinitionKind
    fingerprint: str  # the SDK's `fingerprint` ("sha256:<hex>", description excluded)
    definition: dict[str, Any]  # the SDK's `to_dict()` form


class ApplySpec(TypedDict):
    """`features.apply` command spec: every definition to hold (applying the same ones again is a no-op)."""

    tenant_id: str
    definitions: list[DefinitionSpec]


class MaterializeSpec(TypedDict):
    """`features.materialize` command spec. No start/end: incremental from the stored watermark."""

    job_id: str
    tenant_id: str
    project: str
    name: str
    version: int
    start: str | None  # ISO-8601 UTC; a backfill range when given
    end: str | None


class MaterializationPayload(TypedDict, total=False):
    """`features.materialization` event payload: one job's status and progress (counts only)."""

    job_id: str
    status: str  # MaterializationStatus
    rows_done: int
    rows_total: int | None
    error_summary: str | None  # <= ERROR_SUMMARY_MAX characters
    at: str  # ISO-8601 UTC


class FreshnessPayload(TypedDict, total=False):
    """`features.freshness` event payload: metadata about one feature-set version's stores."""

    project: str
    name: str
    version: int
    last_materialized_at: str | None  # ISO-8601 UTC
    offline_rows: int
    online_keys: int
    at: str


def canonical_json(definition: dict[str, Any]) -> str:
    """The definition as one stable string (sorted keys, no spaces) for storage and comparison."""
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)


def summarize_error(text: str) -> str:
    text = text.strip()
    if len(text) <= ERROR_SUMMARY_MAX:
        return text
    return "…" + text[-(ERROR_SUMMARY_MAX - 1) :]


def parse_feature_ref(ref: str) -> tuple[str, str]:
    """`"driver_stats:trips_today"` -> `("driver_stats", "trips_today")`, or ValueError saying why."""
    set_name, sep, feature = ref.partition(":")
    if not sep or not set_name or not feature:
        raise ValueError(f"feature reference {ref!r} must look like SET:FEATURE, e.g. driver_stats:trips_today")
    return set_name.strip(), feature.strip()
