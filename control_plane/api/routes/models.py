"""Registered models (`mallard models create|list|show`) and starting builds of them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from control_plane.api.deps import CurrentPrincipal, SessionDep, SettingsDep
from control_plane.api.schemas import RequestBody
from control_plane.models import Agent
from control_plane.services import builds

router = APIRouter(prefix="/models", tags=["models"])


class ModelCreate(RequestBody):
    name: str = Field(description="Lowercase DNS label, unique in the tenant.")
    project: str = Field(description="Project id or name.")
    description: str = Field(default="", max_length=2000)


class BuildCreate(RequestBody):
    agent_id: str = Field(max_length=40, description="The agent whose data plane holds the uploaded context.")
    context_digest: str = Field(max_length=80, description="sha256:<hex> of the context uploaded to that agent.")
    builder: str = Field(default="local", description="local | docker")
    params: dict[str, str] = Field(default_factory=dict, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=50)


@router.get("")
def list_models(principal: CurrentPrincipal, session: SessionDep, project: str | None = None) -> list[dict[str, Any]]:
    return [builds.model_view(m) for m in builds.list_models(session, tenant_id=principal.tenant_id, project=project)]


@router.post("", status_code=201)
def create_model(body: ModelCreate, principal: CurrentPrincipal, session: SessionDep) -> dict[str, Any]:
    model = builds.create_model(
        session,
        tenant_id=principal.tenant_id,
        name=body.name,
        project=body.project,
        description=body.description,
        actor=principal.actor,
    )
    session.commit()
    return builds.model_view(model)


@router.get("/{model_id_or_name}")
def get_model(model_id_or_name: str, principal: CurrentPrincipal, session: SessionDep) -> dict[str, Any]:
    return builds.model_view(builds.get_model(session, tenant_id=principal.tenant_id, model=model_id_or_name))


@router.post("/{model_id_or_name}/builds", status_code=201)
def create_build(
    model_id_or_name: str, body: BuildCreate, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Record a QUEUED build and dispatch it to the agent that holds the context."""
    build = builds.create_build(
        session,
        tenant_id=principal.tenant_id,
        model=model_id_or_name,
        agent_id=body.agent_id,
        context_digest=body.context_digest,
        builder=body.builder,
        params=body.params,
        tags=body.tags,
        actor=principal.actor,
        command_ttl_seconds=settings.command_ttl_seconds,
    )
    session.commit()
    agent = session.get(Agent, build.agent_id)
    model = builds.get_model(session, tenant_id=principal.tenant_id, model=build.model_id)
    return builds.build_view(build, model_name=model.name, data_plane_url=agent.data_plane_url if agent else None)
