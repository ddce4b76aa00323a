"""Builds as this agent knows them, and their logs (followed by polling with an offset)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Response

from data_plane_agent.builds import BuildManager
from shared.errors import NotFound
from shared.jwt_tokens import DataPlaneClaims


def builds_router(*, builds: BuildManager, claims: Callable[..., DataPlaneClaims]) -> APIRouter:
    router = APIRouter(prefix="/v1/builds", tags=["builds"])

    @router.get("/{build_id}")
    def get_build(build_id: str, c: DataPlaneClaims = Depends(claims)) -> dict[str, Any]:
        """Status, phase timeline, error summary and artifact of a build run by this agent."""
        record = builds.get(build_id)
        if record is None or record.spec is None:
            raise NotFound(f"build {build_id} is not known to this agent", field="build_id")
        return record.view()

    @router.get("/{build_id}/logs")
    def get_logs(
        build_id: str,
        offset: int = Query(0, ge=0),
        limit: int = Query(1024 * 1024, ge=1, le=8 * 1024 * 1024),
        c: DataPlaneClaims = Depends(claims),
    ) -> Response:
        """Log bytes from `offset`; `X-Log-Offset` is where to continue, `X-Build-Status` tells when to stop."""
        found = builds.read_log(build_id, offset, limit)
        if found is None:
            raise NotFound(f"build {build_id} is not known to this agent", field="build_id")
        data, next_offset, status = found
        return Response(
            content=data,
            media_type="text/plain; charset=utf-8",
            headers={"X-Log-Offset": str(next_offset), "X-Build-Status": status},
        )

    return router
