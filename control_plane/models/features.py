"""Feature-set definitions, their freshness and materialization jobs: metadata only.

Feature values live in the agent's offline (Parquet) and online (SQLite/Redis) stores; the
control plane keeps what a user wrote (names, types, SQL text, schedules) and counts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.models.common import new_id, utcnow


class FeatureSetDefinition(SQLModel, table=True):
    """One version of a feature set, as registered by `mallard features apply`."""

    __tablename__ = "feature_set_definition"
    __table_args__ = (UniqueConstraint("tenant_id", "project_id", "name", "version"),)

    id: str = Field(default_factory=lambda: new_id("fs"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=40)
    agent_id: str = Field(foreign_key="agent.id", max_length=40)  # the data plane that holds its data
    name: str = Field(max_length=63)
    version: int
    kind: str = Field(max_length=32)
    definition_json: str
    fingerprint: str = Field(max_length=80)
    schedule: str | None = Field(default=None, max_length=100)
    online: bool = True
    # Whether the agent accepted the definition: pending until it acks the features.apply command
    # that carried it, then applied, or refused with its reason (e.g. a column missing in its data).
    agent_status: str = Field(default="pending", max_length=16)
    agent_error: str | None = Field(default=None, max_length=600)
    apply_command_id: str | None = Field(default=None, max_length=40, index=True)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Freshness, as the agent last reported it (features.freshness events).
    last_materialized_at: datetime | None = None
    offline_rows: int | None = None
    online_keys: int | None = None
    freshness_reported_at: datetime | None = None


class FeatureMaterialization(SQLModel, table=True):
    """One `features.materialize` job: status and progress come from the agent's events."""

    __tablename__ = "feature_materialization"
    __table_args__ = (Index("ix_feature_materialization_set_created", "feature_set_id", "created_at"),)

    id: str = Field(default_factory=lambda: new_id("mat"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    feature_set_id: str = Field(foreign_key="feature_set_definition.id", max_length=40)
    agent_id: str = Field(foreign_key="agent.id", max_length=40)
    status: str = Field(default="QUEUED", max_length=16)
    range_start: datetime | None = None  # a backfill range; none = incremental
    range_end: datetime | None = None
    rows_done: int = 0
    rows_total: int | None = None
    error_summary: str | None = Field(default=None, max_length=600)
    command_id: str | None = Field(default=None, max_length=40)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
