"""Feature sets (`mallard features apply|list|show|materialize`): definitions and freshness only.

Feature values never come here; they are read from the agent's data-plane API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field
from sqlmodel import Session

from control_plane.api.deps import CurrentPrincipal, SessionDep, SettingsDep
from control_plane.api.schemas import RequestBody
from control_plane.models import FeatureSetDefinition, Project
from control_plane.services import features

router = APIRouter(tags=["features"])


class DefinitionIn(RequestBody):
    name: str = Field(max_length=63, description="Feature-set name: lowercase letters, digits and '_'.")
    version: int = Field(description="Registered versions stay readable; an incompatible change needs a new one.")
    kind: str = Field(description="feature_set | stream_feature_set")
    definition: dict[str, Any] = Field(description="The SDK's `to_dict()` form: names, types, SQL text, schedule.")


class FeatureSetsApply(RequestBody):
    project: str = Field(max_length=63, description="Project id or name.")
    definitions: list[DefinitionIn] = Field(max_length=100)
    agent_id: str | None = Field(
        default=None, max_length=40, description="The agent holding the project's feature data (default: the only one)."
    )


class MaterializeRequest(RequestBody):
    project: str | None = Field(default=None, max_length=63, description="Needed when the name is in several projects.")
    version: int | None = Field(default=None, ge=1, description="Default: the latest version.")
    start: datetime | None = Field(default=None, description="Backfill from (inclusive); none: incremental.")
    end: datetime | None = Field(default=None, description="Backfill until (exclusive); default: now.")


def _view(session: Session, row: FeatureSetDefinition) -> dict[str, Any]:
    project = session.get(Project, row.project_id)
    return features.feature_set_view(row, project_name=project.name if project else None)


@router.post("/feature-sets")
def apply_feature_sets(
    body: FeatureSetsApply, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Register definitions (all or nothing) and send them to the agent. Re-applying is a no-op."""
    results, command_id = features.apply_definitions(
        session,
        tenant_id=principal.tenant_id,
        project=body.project,
        definitions=[d.model_dump() for d in body.definitions],
        agent_id=body.agent_id,
        actor=principal.actor,
        command_ttl_seconds=settings.command_ttl_seconds,
    )
    session.commit()
    return {
        "command_id": command_id,
        "feature_sets": [{**_view(session, row), "change": change} for row, change in results],
    }


@router.get("/feature-sets")
def list_feature_sets(
    principal: CurrentPrincipal, session: SessionDep, project: str | None = None
) -> list[dict[str, Any]]:
    rows = features.list_feature_sets(session, tenant_id=principal.tenant_id, project=project)
    return [_view(session, r) for r in rows]


@router.get("/feature-sets/{feature_set}")
def get_feature_set(
    feature_set: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    project: str | None = None,
    version: int | None = Query(default=None, ge=1),
) -> dict[str, Any]:
    """One version (the latest by default) with its freshness and recent materializations."""
    row = features.get_feature_set(
        session, tenant_id=principal.tenant_id, feature_set=feature_set, project=project, version=version
    )
    jobs = features.list_materializations(session, feature_set_id=row.id, limit=5)
    return {**_view(session, row), "materializations": [features.materialization_view(j) for j in jobs]}


@router.get("/feature-sets/{feature_set}/versions")
def list_feature_set_versions(
    feature_set: str, principal: CurrentPrincipal, session: SessionDep, project: str | None = None
) -> list[dict[str, Any]]:
    rows = features.feature_set_versions(
        session, tenant_id=principal.tenant_id, feature_set=feature_set, project=project
    )
    return [_view(session, r) for r in rows]


@router.post("/feature-sets/{feature_set}/materialize", status_code=201)
def materialize_feature_set(
    feature_set: str,
    body: MaterializeRequest,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Queue a materialization on the agent; follow it at GET /feature-materializations/{id}."""
    job = features.materialize(
        session,
        tenant_id=principal.tenant_id,
        feature_set=feature_set,
        project=body.project,
        version=body.version,
        start=body.start,
        end=body.end,
        actor=principal.actor,
        command_ttl_seconds=settings.command_ttl_seconds,
    )
    session.commit()
    return features.materialization_view(job)


@router.get("/feature-materializations/{materialization_id}")
def get_materialization(materialization_id: str, principal: CurrentPrincipal, session: SessionDep) -> dict[str, Any]:
    return features.materialization_view(
        features.get_materialization(session, tenant_id=principal.tenant_id, materialization_id=materialization_id)
    )
