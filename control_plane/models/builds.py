"""Registered models and their builds: metadata only (the artifacts stay in the data plane)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.models.common import new_id, utcnow


class RegisteredModel(SQLModel, table=True):
    """A model name inside a project; `mallard models build` produces builds of it."""

    __tablename__ = "registered_model"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: str = Field(default_factory=lambda: new_id("mdl"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=40)
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=2000)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow)


class Build(SQLModel, table=True):
    """One build of a model by one agent. Status and phases come from the agent's events."""

    __table_args__ = (Index("ix_build_model_created", "model_id", "created_at"),)

    id: str = Field(default_factory=lambda: new_id("bld"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    model_id: str = Field(foreign_key="registered_model.id", max_length=40)
    agent_id: str = Field(foreign_key="agent.id", index=True, max_length=40)
    status: str = Field(default="QUEUED", max_length=16, index=True)
    builder: str = Field(max_length=16)
    context_digest: str = Field(max_length=80)
    params_json: str = Field(default="{}")
    metrics_json: str = Field(default="{}")
    tags_json: str = Field(default="[]")
    phases_json: str = Field(default="[]")
    failed_phase: str | None = Field(default=None, max_length=40)
    error_summary: str | None = Field(default=None, max_length=600)
    artifact_digest: str | None = Field(default=None, max_length=80)
    artifact_uri: str | None = Field(default=None, max_length=300)
    image: str | None = Field(default=None, max_length=200)
    command_id: str | None = Field(default=None, max_length=40)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    cancel_requested_at: datetime | None = None


class BuildTag(SQLModel, table=True):
    """Tags are rows so builds can be filtered by tag in SQL."""

    __tablename__ = "build_tag"

    build_id: str = Field(foreign_key="build.id", primary_key=True, max_length=40)
    tag: str = Field(primary_key=True, max_length=100, index=True)
