"""The append-only audit log: who changed what, when. Triggers refuse UPDATE and DELETE."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from control_plane.models.common import utcnow


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str | None = Field(default=None, index=True, max_length=40)
    actor: str = Field(max_length=120)
    action: str = Field(max_length=80, index=True)
    target_type: str = Field(max_length=40)
    target_id: str = Field(max_length=80)
    details_json: str = Field(default="{}")
    created_at: datetime = Field(default_factory=utcnow, index=True)
