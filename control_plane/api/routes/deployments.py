"""Deployments (`mallard models deploy|undeploy`, `mallard deployments list|show`) and the
per-minute serving metrics of a model. Predictions themselves go to the agent's data plane."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import Field
from sqlmodel import Session

from control_plane.api.deps import CurrentPrincipal, SessionDep, SettingsDep
from control_plane.api.schemas import RequestBody
from control_plane.models import Agent, Deployment, RegisteredModel
from control_plane.services import deployment_events, deployments
from control_plane.services.deployment_requests import DEFAULT_BATCH_ROWS
from control_plane.services.deployment_views import deployment_view, revision_view

router = APIRouter(tags=["deployments"])


class BatchBody(RequestBody):
    input: str = Field(description="Parquet file, directory or s3://bucket/prefix in the data plane.")
    output: str = Field(description="Directory or s3://bucket/prefix where part files are written.")
    batch_rows: int = Field(default=DEFAULT_BATCH_ROWS, description="Rows per record batch.")


class StreamingBody(RequestBody):
    redis_url: str = Field(description="redis:// URL of the stream server, reachable from the agent.")
    input_stream: str
    output_stream: str
    group: str = Field(description="Consumer group (created when missing).")


class DeploymentCreate(RequestBody):
    model: str = Field(description="Model id or name.")
    kind: str = Field(description="realtime | batch | streaming")
    build: str = Field(max_length=40, description="A SUCCEEDED build of the model.")
    variation: str = Field(default="default", description="Variation this build serves as.")
    weight: int | None = Field(
        default=None, description="Relative traffic weight, 0-100 (ignored for shadows); default: unchanged (new: 100)."
    )
    shadow: bool = Field(default=False, description="Mirror traffic to it; log its answers, never return them.")
    replicas: int | None = Field(
        default=None, description="Model server replicas for this variation (1-16); default: unchanged (new: 1)."
    )
    runtime: str | None = Field(default=None, description="local | docker; default: unchanged (new: local).")
    logging: bool | None = Field(default=None, description="Inference-lake logging; default: unchanged (new: on).")
    timeout_ms: int | None = Field(default=None, description="Per-request prediction timeout.")
    batch: BatchBody | None = None
    streaming: StreamingBody | None = None


def _view(session: Session, deployment: Deployment) -> dict[str, Any]:
    model = session.get(RegisteredModel, deployment.model_id)
    agent = session.get(Agent, deployment.agent_id)
    return deployment_view(
        deployment, model_name=model.name if model else None, data_plane_url=agent.data_plane_url if agent else None
    )


@router.get("/deployments")
def list_deployments(
    principal: CurrentPrincipal,
    session: SessionDep,
    model: str | None = None,
    kind: str | None = None,
    all: bool = Query(default=False, description="Include stopped deployments."),
) -> list[dict[str, Any]]:
    rows = deployments.list_deployments(
        session, tenant_id=principal.tenant_id, model=model, kind=kind, include_stopped=all
    )
    return [_view(session, d) for d in rows]


@router.post("/deployments", status_code=201)
def create_deployment(
    body: DeploymentCreate, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, response: Response
) -> dict[str, Any]:
    """Deploy a build as a variation of the model's deployment of that kind (created when there is none).

    201 when a deployment was created, 200 when an existing one got a new revision.
    """
    deployment, created = deployments.deploy(
        session,
        tenant_id=principal.tenant_id,
        model=body.model,
        kind=body.kind,
        build=body.build,
        variation=body.variation,
        weight=body.weight,
        shadow=body.shadow,
        replicas=body.replicas,
        runtime=body.runtime,
        logging_enabled=body.logging,
        timeout_ms=body.timeout_ms,
        batch=body.batch.model_dump() if body.batch else None,
        streaming=body.streaming.model_dump() if body.streaming else None,
        actor=principal.actor,
        command_ttl_seconds=settings.command_ttl_seconds,
    )
    session.commit()
    if not created:
        response.status_code = 200
    return _view(session, deployment)


@router.get("/deployments/{deployment_id}")
def get_deployment(deployment_id: str, principal: CurrentPrincipal, session: SessionDep) -> dict[str, Any]:
    """Desired state (revision, variations) and the agent's latest report (state, replicas, progress)."""
    return _view(session, deployments.get_deployment(session, tenant_id=principal.tenant_id, deployment=deployment_id))


@router.get("/deployments/{deployment_id}/history")
def get_deployment_history(
    deployment_id: str, principal: CurrentPrincipal, session: SessionDep
) -> list[dict[str, Any]]:
    """Every revision of the desired state, oldest first."""
    deployment = deployments.get_deployment(session, tenant_id=principal.tenant_id, deployment=deployment_id)
    return [revision_view(r) for r in deployments.revisions(session, deployment)]


@router.delete("/deployments/{deployment_id}")
def delete_deployment(
    deployment_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    variation: str | None = Query(default=None, description="Remove only this variation."),
) -> dict[str, Any]:
    """Undeploy: stop the whole deployment, or remove one variation while the others keep serving."""
    deployment = deployments.undeploy(
        session,
        tenant_id=principal.tenant_id,
        deployment_id=deployment_id,
        variation=variation,
        actor=principal.actor,
        command_ttl_seconds=settings.command_ttl_seconds,
    )
    session.commit()
    return _view(session, deployment)


@router.get("/models/{model_id_or_name}/metrics")
def get_model_metrics(
    model_id_or_name: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    since: datetime | None = Query(default=None, description="ISO-8601 with a timezone; default: everything kept."),
    variation: str | None = None,
    limit: int = Query(default=1440, ge=1, le=10_080, description="Most recent minutes to return."),
) -> dict[str, Any]:
    """Per-minute count, errors and latency percentiles (p50/p95/p99) reported by the agents.

    When an agent reports one minute twice (e.g. it restarted), counts add up and percentiles
    are combined weighted by count, an approximation.
    """
    return deployment_events.model_metrics(
        session, tenant_id=principal.tenant_id, model=model_id_or_name, since=since, variation=variation, limit=limit
    )
