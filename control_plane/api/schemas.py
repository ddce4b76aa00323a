"""Response bodies (`XPublic`) shared by the routes, and the base class of every request body.

Timestamps are ISO-8601 strings in UTC with a `Z`, as everywhere else in Mallard.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from control_plane.models import (
    Agent,
    AgentEvent,
    ApiKey,
    AuditLog,
    JoinToken,
    Membership,
    Project,
    Tenant,
    User,
)
from control_plane.models.common import iso
from control_plane.services.agents import agent_status
from control_plane.services.api_keys import key_status
from control_plane.services.join_tokens import join_token_status


class RequestBody(BaseModel):
    """Base of request bodies: an unknown field is an error, not something silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    status: str
    version: str


class TenantPublic(BaseModel):
    id: str
    name: str
    created_at: str | None

    @classmethod
    def from_row(cls, tenant: Tenant) -> TenantPublic:
        return cls(id=tenant.id, name=tenant.name, created_at=iso(tenant.created_at))


class UserPublic(BaseModel):
    id: str
    email: str
    name: str
    role: str
    is_platform_admin: bool
    created_at: str | None

    @classmethod
    def from_row(cls, user: User, membership: Membership) -> UserPublic:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            role=membership.role,
            is_platform_admin=user.is_platform_admin,
            created_at=iso(user.created_at),
        )


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    user_id: str
    tenant_id: str
    status: str
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None

    @classmethod
    def fields_of(cls, key: ApiKey) -> dict[str, Any]:
        return {
            "id": key.id,
            "name": key.name,
            "user_id": key.user_id,
            "tenant_id": key.tenant_id,
            "status": key_status(key),
            "created_at": iso(key.created_at),
            "expires_at": iso(key.expires_at),
            "last_used_at": iso(key.last_used_at),
            "revoked_at": iso(key.revoked_at),
        }

    @classmethod
    def from_row(cls, key: ApiKey) -> ApiKeyPublic:
        return cls(**cls.fields_of(key))


class ApiKeyCreated(ApiKeyPublic):
    key: str  # the plaintext, returned only in this response


class NewTenantPublic(BaseModel):
    tenant: TenantPublic
    user: UserPublic
    api_key: ApiKeyCreated


class MePublic(BaseModel):
    user: UserPublic
    tenant: TenantPublic
    role: str


class ProjectPublic(BaseModel):
    id: str
    tenant_id: str
    name: str
    description: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def from_row(cls, project: Project) -> ProjectPublic:
        return cls(
            id=project.id,
            tenant_id=project.tenant_id,
            name=project.name,
            description=project.description,
            created_at=iso(project.created_at),
            updated_at=iso(project.updated_at),
        )


class JoinTokenPublic(BaseModel):
    id: str
    tenant_id: str
    name: str
    status: str
    created_by: str
    created_at: str | None
    expires_at: str | None
    redeemed_at: str | None
    agent_id: str | None
    revoked_at: str | None

    @classmethod
    def fields_of(cls, token: JoinToken) -> dict[str, Any]:
        return {
            "id": token.id,
            "tenant_id": token.tenant_id,
            "name": token.name,
            "status": join_token_status(token),
            "created_by": token.created_by,
            "created_at": iso(token.created_at),
            "expires_at": iso(token.expires_at),
            "redeemed_at": iso(token.redeemed_at),
            "agent_id": token.agent_id,
            "revoked_at": iso(token.revoked_at),
        }

    @classmethod
    def from_row(cls, token: JoinToken) -> JoinTokenPublic:
        return cls(**cls.fields_of(token))


class JoinTokenCreated(JoinTokenPublic):
    token: str  # the plaintext, returned only in this response


class AgentPublic(BaseModel):
    id: str
    name: str
    tenant_id: str
    hostname: str
    version: str
    capabilities: list[str]
    data_plane_url: str
    status: str
    connected: bool
    last_seen_at: str | None
    connected_at: str | None
    cert_serial: str | None
    cert_expires_at: str | None
    revoked_at: str | None
    created_at: str | None

    @classmethod
    def from_row(cls, agent: Agent, *, offline_after_seconds: float) -> AgentPublic:
        return cls(
            id=agent.id,
            name=agent.name,
            tenant_id=agent.tenant_id,
            hostname=agent.hostname,
            version=agent.version,
            capabilities=json.loads(agent.capabilities_json or "[]"),
            data_plane_url=agent.data_plane_url,
            status=agent_status(agent, offline_after_seconds=offline_after_seconds),
            connected=agent.connected,
            last_seen_at=iso(agent.last_seen_at),
            connected_at=iso(agent.connected_at),
            cert_serial=agent.cert_serial,
            cert_expires_at=iso(agent.cert_expires_at),
            revoked_at=iso(agent.revoked_at),
            created_at=iso(agent.created_at),
        )


class CommandPublic(BaseModel):
    """Built from services.commands.command_view, the one shape the API and CLI share."""

    id: str
    agent_id: str
    type: str
    spec: dict[str, Any]
    state: str
    result: Any
    error: str | None
    created_by: str
    created_at: str | None
    delivered_at: str | None
    delivery_count: int
    acked_at: str | None
    expires_at: str | None


class EventPublic(BaseModel):
    id: int | None
    agent_id: str
    seq: int
    type: str
    payload: Any
    occurred_at: str | None
    received_at: str | None

    @classmethod
    def from_row(cls, event: AgentEvent) -> EventPublic:
        return cls(
            id=event.id,
            agent_id=event.agent_id,
            seq=event.seq,
            type=event.type,
            payload=json.loads(event.payload_json or "{}"),
            occurred_at=iso(event.occurred_at),
            received_at=iso(event.received_at),
        )


class AuditEntryPublic(BaseModel):
    id: int | None
    tenant_id: str | None
    actor: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    created_at: str | None

    @classmethod
    def from_row(cls, entry: AuditLog) -> AuditEntryPublic:
        return cls(
            id=entry.id,
            tenant_id=entry.tenant_id,
            actor=entry.actor,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            details=json.loads(entry.details_json or "{}"),
            created_at=iso(entry.created_at),
        )


class DataPlaneTokenPublic(BaseModel):
    token: str
    expires_at: str | None
    tenant_id: str
