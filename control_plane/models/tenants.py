"""Tenants, users, their per-tenant roles, and API keys (stored hashed)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.models.common import new_id, utcnow


class Role(StrEnum):
    admin = "admin"
    member = "member"
    viewer = "viewer"


class Tenant(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("ten"), primary_key=True, max_length=40)
    name: str = Field(index=True, unique=True, max_length=63)
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    id: str = Field(default_factory=lambda: new_id("usr"), primary_key=True, max_length=40)
    email: str = Field(index=True, unique=True, max_length=254)
    name: str = Field(default="", max_length=200)
    is_platform_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "tenant_id"),)

    id: str = Field(default_factory=lambda: new_id("mem"), primary_key=True, max_length=40)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    role: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """A user's credential inside one tenant. Only a SHA-256 of the secret is stored."""

    id: str = Field(default_factory=lambda: new_id("key"), primary_key=True, max_length=40)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenant.id", index=True, max_length=40)
    name: str = Field(default="", max_length=100)
    secret_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
