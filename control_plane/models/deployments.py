"""Deployments (the desired state of a served model, and what its agent reports) and the
per-minute serving aggregates. Prediction inputs and outputs never reach these tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.models.common import new_id, utcnow


class Deployment(SQLModel, table=True):
    """One build (or several, as variations) of a model served by one agent.

    The desired state is versioned by `revision`; every change sends the whole of it to the
    agent in a `deployment.apply` command. `state` and the fields after it are the agent's
    latest report (`deployment.status` events), for `observed_revision`.
    """

    __table_args__ = (Index("ix_deployment_tenant_model", "tenant_id", "model_id"),)

    id: str = Field(default_factory=lambda: new_id("dep"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    project_id: str = Field(foreign_key="project.id", max_length=40)
    model_id: str = Field(foreign_key="registered_model.id", max_length=40)
    agent_id: str = Field(foreign_key="agent.id", index=True, max_length=40)
    name: str = Field(max_length=63)
    kind: str = Field(max_length=16)
    runtime: str = Field(default="local", max_length=16)
    logging: bool = True
    timeout_ms: int = 10_000
    revision: int = 1
    variations_json: str = Field(default="[]")
    batch_json: str | None = None
    streaming_json: str | None = None
    desired: str = Field(default="running", max_length=16)  # running | stopped
    state: str = Field(default="PENDING", max_length=16, index=True)
    message: str | None = Field(default=None, max_length=600)
    observed_revision: int = 0
    replicas_json: str = Field(default="[]")
    rows_done: int | None = None
    rows_total: int | None = None
    lag: int | None = None
    reported_at: datetime | None = None
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    stopped_at: datetime | None = None


class DeploymentRevision(SQLModel, table=True):
    """Every desired state a deployment had: who changed it, when, and the command that carried it."""

    __tablename__ = "deployment_revision"

    deployment_id: str = Field(foreign_key="deployment.id", primary_key=True, max_length=40)
    revision: int = Field(primary_key=True)
    tenant_id: str = Field(index=True, max_length=40)
    action: str = Field(max_length=40)  # deploy | undeploy-variation | undeploy
    spec_json: str = Field(default="{}")
    command_id: str | None = Field(default=None, max_length=40)
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow)


class ServingMetric(SQLModel, table=True):
    """One minute of one deployment variation's traffic: aggregates only, from `serving.metrics`."""

    __tablename__ = "serving_metric"
    __table_args__ = (
        UniqueConstraint("deployment_id", "variation", "build_id", "minute"),
        Index("ix_serving_metric_model_minute", "model_id", "minute"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True, max_length=40)
    deployment_id: str = Field(foreign_key="deployment.id", max_length=40)
    model_id: str = Field(foreign_key="registered_model.id", max_length=40)
    agent_id: str = Field(max_length=40)
    variation: str = Field(max_length=63)
    build_id: str = Field(max_length=40)
    minute: datetime
    count: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    updated_at: datetime = Field(default_factory=utcnow)
