"""Members of the caller's tenant. Everyone can read the list; only admins change it."""

from __future__ import annotations

from fastapi import APIRouter

from control_plane.api.deps import AdminPrincipal, CurrentPrincipal, SessionDep
from control_plane.api.schemas import RequestBody, UserPublic
from control_plane.models import Role
from control_plane.services import users

router = APIRouter(prefix="/users", tags=["users"])


class UserCreate(RequestBody):
    email: str
    name: str = ""
    role: Role


class UserUpdate(RequestBody):
    role: Role


@router.get("", response_model=list[UserPublic])
def list_users(principal: CurrentPrincipal, session: SessionDep) -> list[UserPublic]:
    return [UserPublic.from_row(u, m) for u, m in users.list_members(session, tenant_id=principal.tenant_id)]


@router.post("", status_code=201, response_model=UserPublic)
def add_user(body: UserCreate, principal: AdminPrincipal, session: SessionDep) -> UserPublic:
    user, membership = users.add_member(
        session, tenant_id=principal.tenant_id, email=body.email, name=body.name, role=body.role, actor=principal.actor
    )
    session.commit()
    return UserPublic.from_row(user, membership)


@router.get("/{user_id}", response_model=UserPublic)
def get_user(user_id: str, principal: CurrentPrincipal, session: SessionDep) -> UserPublic:
    return UserPublic.from_row(*users.get_member(session, tenant_id=principal.tenant_id, user_id=user_id))


@router.patch("/{user_id}", response_model=UserPublic)
def change_user_role(user_id: str, body: UserUpdate, principal: AdminPrincipal, session: SessionDep) -> UserPublic:
    user, membership = users.change_role(
        session, tenant_id=principal.tenant_id, user_id=user_id, role=body.role, actor=principal.actor
    )
    session.commit()
    return UserPublic.from_row(user, membership)


@router.delete("/{user_id}", status_code=204)
def remove_user(user_id: str, principal: AdminPrincipal, session: SessionDep) -> None:
    users.remove_member(session, tenant_id=principal.tenant_id, user_id=user_id, actor=principal.actor)
    session.commit()
