"""Agents, the join tokens that enroll them, their certificates, commands and events."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.models.common import new_id, utcnow


class JoinToken(SQLModel, table=True):
    """A one-time enrollment secret. Redeemed atomically; only its SHA-256 is stored."""

    __tablename__ = "join_token"

    id: str = Field(default_factory=lambda: new_id("jt"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    name: str = Field(max_length=63)
    secret_hash: str = Field(max_length=64)
    created_by: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    redeemed_at: datetime | None = None
    agent_id: str | None = Field(default=None, max_length=40)
    revoked_at: datetime | None = None


class Agent(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("agt"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    name: str = Field(max_length=63)
    hostname: str = Field(default="", max_length=255)
    version: str = Field(default="", max_length=40)
    capabilities_json: str = Field(default="[]")
    data_plane_url: str = Field(default="", max_length=500)
    status: str = Field(default="offline", max_length=16)
    connected: bool = False
    last_seen_at: datetime | None = None
    connected_at: datetime | None = None
    cert_serial: str | None = Field(default=None, max_length=64)
    cert_expires_at: datetime | None = None
    last_event_seq: int = 0
    revoked_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class AgentCertificate(SQLModel, table=True):
    """Every certificate the CA signed for an agent; revocation is by serial."""

    __tablename__ = "agent_certificate"

    serial: str = Field(primary_key=True, max_length=64)
    agent_id: str = Field(foreign_key="agent.id", index=True, max_length=40)
    tenant_id: str = Field(index=True, max_length=40)
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class AgentCommand(SQLModel, table=True):
    """A durable command for one agent: pending -> delivered -> succeeded | failed | expired."""

    __tablename__ = "agent_command"
    __table_args__ = (Index("ix_agent_command_agent_state", "agent_id", "state"),)

    id: str = Field(default_factory=lambda: new_id("cmd"), primary_key=True, max_length=40)
    tenant_id: str = Field(index=True, max_length=40)
    agent_id: str = Field(foreign_key="agent.id", max_length=40)
    type: str = Field(max_length=40)
    spec_json: str = Field(default="{}")
    state: str = Field(default="pending", max_length=16, index=True)
    result_json: str | None = None
    error: str | None = None
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
    delivery_count: int = 0
    acked_at: datetime | None = None
    expires_at: datetime


class AgentEvent(SQLModel, table=True):
    """A metadata event applied once per (agent, seq)."""

    __tablename__ = "agent_event"
    __table_args__ = (UniqueConstraint("agent_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(index=True, max_length=40)
    agent_id: str = Field(foreign_key="agent.id", max_length=40)
    seq: int
    type: str = Field(max_length=80)
    payload_json: str = Field(default="{}")
    occurred_at: datetime
    received_at: datetime = Field(default_factory=utcnow)
