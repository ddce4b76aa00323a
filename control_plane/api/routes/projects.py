"""Projects in the caller's tenant, addressed by id or by name. Members create and edit; admins delete."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from control_plane.api.deps import AdminPrincipal, CurrentPrincipal, SessionDep
from control_plane.api.schemas import ProjectPublic, RequestBody
from control_plane.services import projects

router = APIRouter(prefix="/projects", tags=["projects"])


class ProjectCreate(RequestBody):
    name: str = Field(description="Lowercase DNS label, unique in the tenant.")
    description: str = Field(default="", max_length=2000)


class ProjectUpdate(RequestBody):
    description: str = Field(max_length=2000)


@router.get("", response_model=list[ProjectPublic])
def list_projects(principal: CurrentPrincipal, session: SessionDep) -> list[ProjectPublic]:
    return [ProjectPublic.from_row(p) for p in projects.list_projects(session, tenant_id=principal.tenant_id)]


@router.post("", status_code=201, response_model=ProjectPublic)
def create_project(body: ProjectCreate, principal: CurrentPrincipal, session: SessionDep) -> ProjectPublic:
    project = projects.create_project(
        session, tenant_id=principal.tenant_id, name=body.name, description=body.description, actor=principal.actor
    )
    session.commit()
    return ProjectPublic.from_row(project)


@router.get("/{project_id_or_name}", response_model=ProjectPublic)
def get_project(project_id_or_name: str, principal: CurrentPrincipal, session: SessionDep) -> ProjectPublic:
    return ProjectPublic.from_row(
        projects.get_project(session, tenant_id=principal.tenant_id, id_or_name=project_id_or_name)
    )


@router.patch("/{project_id_or_name}", response_model=ProjectPublic)
def update_project(
    project_id_or_name: str, body: ProjectUpdate, principal: CurrentPrincipal, session: SessionDep
) -> ProjectPublic:
    row = projects.get_project(session, tenant_id=principal.tenant_id, id_or_name=project_id_or_name)
    projects.update_project(session, row, description=body.description, actor=principal.actor)
    session.commit()
    return ProjectPublic.from_row(row)


@router.delete("/{project_id_or_name}", status_code=204)
def delete_project(project_id_or_name: str, principal: AdminPrincipal, session: SessionDep) -> None:
    row = projects.get_project(session, tenant_id=principal.tenant_id, id_or_name=project_id_or_name)
    projects.delete_project(session, row, actor=principal.actor)
    session.commit()
