"""JSON views of deployments and their revisions, as the API returns them."""

from __future__ import annotations

import json
from typing import Any

from control_plane.models import Deployment, DeploymentRevision
from control_plane.models.common import iso


def deployment_view(
    deployment: Deployment, *, model_name: str | None = None, data_plane_url: str | None = None
) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "name": deployment.name,
        "model_id": deployment.model_id,
        "model": model_name,
        "project_id": deployment.project_id,
        "agent_id": deployment.agent_id,
        "data_plane_url": data_plane_url,
        "kind": deployment.kind,
        "runtime": deployment.runtime,
        "logging": deployment.logging,
        "timeout_ms": deployment.timeout_ms,
        "revision": deployment.revision,
        "variations": json.loads(deployment.variations_json or "[]"),
        "batch": json.loads(deployment.batch_json) if deployment.batch_json else None,
        "streaming": json.loads(deployment.streaming_json) if deployment.streaming_json else None,
        "desired": deployment.desired,
        "state": deployment.state,
        "message": deployment.message,
        "observed_revision": deployment.observed_revision,
        "replicas": json.loads(deployment.replicas_json or "[]"),
        "rows_done": deployment.rows_done,
        "rows_total": deployment.rows_total,
        "lag": deployment.lag,
        "reported_at": iso(deployment.reported_at),
        "created_by": deployment.created_by,
        "created_at": iso(deployment.created_at),
        "updated_at": iso(deployment.updated_at),
        "stopped_at": iso(deployment.stopped_at),
    }


def revision_view(row: DeploymentRevision) -> dict[str, Any]:
    return {
        "revision": row.revision,
        "action": row.action,
        "spec": json.loads(row.spec_json or "{}"),
        "command_id": row.command_id,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
    }
