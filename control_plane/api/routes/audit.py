"""The tenant's audit log (admins only). Append-only: there is no route that changes it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import col, select

from control_plane.api.deps import AdminPrincipal, SessionDep
from control_plane.api.schemas import AuditEntryPublic
from control_plane.models import AuditLog

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntryPublic])
def list_audit_entries(
    principal: AdminPrincipal,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[str | None, Query(max_length=80, description="Only entries with this action.")] = None,
) -> list[AuditEntryPublic]:
    query = select(AuditLog).where(col(AuditLog.tenant_id) == principal.tenant_id)
    if action:
        query = query.where(col(AuditLog.action) == action)
    rows = session.exec(query.order_by(col(AuditLog.id).desc()).limit(limit))
    return [AuditEntryPublic.from_row(e) for e in rows]
