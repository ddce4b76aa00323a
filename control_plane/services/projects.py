"""Projects: a tenant's named groups of models, feature sets and automations."""

from __future__ import annotations

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control_plane.models import Project, utcnow
from control_plane.services import audit
from control_plane.services.join_tokens import validate_name
from shared.errors import Conflict, NotFound


def create_project(session: Session, *, tenant_id: str, name: str, description: str, actor: str) -> Project:
    validate_name(name)
    project = Project(tenant_id=tenant_id, name=name, description=description)
    session.add(project)
    try:
        # The unique (tenant_id, name) constraint decides, so two concurrent creates cannot both win.
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a project named {name!r} already exists in this tenant", field="name") from exc
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="project.create",
        target_type="project",
        target_id=project.id,
        details={"name": name},
    )
    return project


def list_projects(session: Session, *, tenant_id: str) -> list[Project]:
    return list(session.exec(select(Project).where(col(Project.tenant_id) == tenant_id).order_by(col(Project.name))))


def get_project(session: Session, *, tenant_id: str, id_or_name: str) -> Project:
    """Look a project up by id or by name; ids (`prj_...`) never look like names (no '_')."""
    project = session.exec(
        select(Project)
        .where(col(Project.tenant_id) == tenant_id)
        .where(or_(col(Project.id) == id_or_name, col(Project.name) == id_or_name))
    ).first()
    if project is None:
        raise NotFound(f"project {id_or_name!r} not found", field="project")
    return project


def update_project(session: Session, project: Project, *, description: str, actor: str) -> Project:
    project.description = description
    project.updated_at = utcnow()
    session.add(project)
    audit.record(
        session,
        tenant_id=project.tenant_id,
        actor=actor,
        action="project.update",
        target_type="project",
        target_id=project.id,
        details={"description": description},
    )
    return project


def delete_project(session: Session, project: Project, *, actor: str) -> None:
    from control_plane.models import RegisteredModel

    models = session.exec(select(RegisteredModel.name).where(col(RegisteredModel.project_id) == project.id)).all()
    if models:
        raise Conflict(
            f"project {project.name!r} still has {len(models)} model(s) ({', '.join(sorted(models)[:5])}); "
            "delete or move them first",
            field="project",
        )
    session.delete(project)
    audit.record(
        session,
        tenant_id=project.tenant_id,
        actor=actor,
        action="project.delete",
        target_type="project",
        target_id=project.id,
        details={"name": project.name},
    )
