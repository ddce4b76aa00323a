"""Projects group a tenant's models, feature sets and automations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.models.common import new_id, utcnow


class Project(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: str = Field(default_factory=lambda: new_id("prj"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
