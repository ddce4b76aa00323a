"""One router per resource, all mounted under /api/v1 by `api_router`."""

from fastapi import APIRouter

from control_plane.api.routes import (
    agents,
    api_keys,
    audit,
    bootstrap,
    builds,
    commands,
    data_plane,
    deployments,
    features,
    health,
    join_tokens,
    me,
    models,
    projects,
    tenants,
    users,
)

api_router = APIRouter()
for module in (
    health,
    bootstrap,
    me,
    tenants,
    users,
    api_keys,
    projects,
    models,
    builds,
    deployments,
    features,
    join_tokens,
    agents,
    commands,
    audit,
    data_plane,
):
    api_router.include_router(module.router)

__all__ = ["api_router"]
