"""SQL over the inference lake: `POST /v1/lake/query` with one read-only SELECT."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from data_plane_agent.lake import LakeQuery
from shared.jwt_tokens import DataPlaneClaims


class LakeQueryRequest(BaseModel):
    """One SELECT (or WITH ... SELECT) over the table `predictions`; `limit` caps the rows returned."""

    sql: str = Field(min_length=1, max_length=100_000)
    limit: int | None = Field(default=None, ge=1)


def lake_router(*, query: LakeQuery, claims: Callable[..., DataPlaneClaims]) -> APIRouter:
    router = APIRouter(prefix="/v1/lake", tags=["lake"])

    @router.post("/query")
    def run_query(body: LakeQueryRequest, c: DataPlaneClaims = Depends(claims)) -> dict[str, Any]:
        """Run the query (in a worker thread); answers `columns`, `rows`, `row_count` and `truncated`."""
        return query.run(body.sql, limit=body.limit).to_dict()

    return router
