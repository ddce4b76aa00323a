"""Builds: list and filter, show, compare, cancel. Logs and artifacts live in the data plane."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlmodel import Session

from control_plane.api.deps import CurrentPrincipal, SessionDep, SettingsDep
from control_plane.models import Agent, Build, RegisteredModel
from control_plane.services import builds

router = APIRouter(prefix="/builds", tags=["builds"])


def _view(session: Session, build: Build) -> dict[str, Any]:
    model = session.get(RegisteredModel, build.model_id)
    agent = session.get(Agent, build.agent_id)
    return builds.build_view(
        build, model_name=model.name if model else None, data_plane_url=agent.data_plane_url if agent else None
    )


@router.get("")
def list_builds(
    principal: CurrentPrincipal,
    session: SessionDep,
    model: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    metric: str | None = Query(default=None, description="e.g. accuracy>0.9 (operators > >= < <= == !=)"),
    limit: int = Query(default=50, ge=1, le=500),
) -> list[dict[str, Any]]:
    rows = builds.list_builds(
        session, tenant_id=principal.tenant_id, model=model, status=status, tag=tag, metric=metric, limit=limit
    )
    return [_view(session, b) for b in rows]


@router.get("/{build_id}/compare/{other_build_id}")
def compare_builds(
    build_id: str, other_build_id: str, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """What differs between two builds: params, metrics (with deltas), context and artifact."""
    first = builds.get_build(session, tenant_id=principal.tenant_id, build_id=build_id)
    second = builds.get_build(session, tenant_id=principal.tenant_id, build_id=other_build_id)
    return builds.compare_builds(first, second)


@router.get("/{build_id}")
def get_build(build_id: str, principal: CurrentPrincipal, session: SessionDep) -> dict[str, Any]:
    return _view(session, builds.get_build(session, tenant_id=principal.tenant_id, build_id=build_id))


@router.post("/{build_id}/cancel")
def cancel_build(
    build_id: str, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    build = builds.cancel_build(
        session,
        tenant_id=principal.tenant_id,
        build_id=build_id,
        actor=principal.actor,
        command_ttl_seconds=settings.command_ttl_seconds,
    )
    session.commit()
    return _view(session, build)
