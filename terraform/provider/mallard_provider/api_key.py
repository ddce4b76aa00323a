"""`mallard_api_key`: an API key; its secret is returned once, at creation, and kept in state.

Keys cannot be changed, only revoked, so every argument replaces the key. A key revoked or
expired outside Terraform reads as gone, and the next plan creates a new one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tf.iface import (
    Config,
    CreateContext,
    DeleteContext,
    ImportContext,
    ReadContext,
    State,
    UpdateContext,
)
from tf.schema import Attribute, Schema
from tf.types import Number, String
from tf.utils import Diagnostics

from mallard_provider.base import MallardResource
from mallard_provider.client import ApiError
from mallard_provider.errors import add_api_error

FIELDS = {"name": "name", "user_id": "user_id", "expires_in_days": "expires_in_days", "key_id": "id"}
LIVE = "active"


def key_state(body: dict[str, Any], *, key: str | None, expires_in_days: int | None) -> State:
    return {
        "id": body["id"],
        "name": body["name"],
        "user_id": body["user_id"],
        "expires_in_days": expires_in_days,
        "key": key,
        "tenant_id": body["tenant_id"],
        "status": body["status"],
        "created_at": body.get("created_at"),
        "expires_at": body.get("expires_at"),
    }


def _days_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))
    return round(delta.total_seconds() / 86400)


class ApiKeyResource(MallardResource):
    """An API key of the provider's user (or, with an admin key, of `user_id`)."""

    @classmethod
    def get_name(cls) -> str:
        return "api_key"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            description="A Mallard API key. Any change replaces it; destroying it revokes it.",
            attributes=[
                Attribute("id", String(), description="Key id (the middle part of mk.<id>.<secret>).", computed=True),
                Attribute(
                    "name",
                    String(),
                    description="What the key is for (1-100 characters).",
                    required=True,
                    requires_replace=True,
                ),
                Attribute(
                    "user_id",
                    String(),
                    description="Whose key. Default: the provider's user. Other users need an admin key.",
                    optional=True,
                    computed=True,
                    requires_replace=True,
                ),
                Attribute(
                    "expires_in_days",
                    Number(),
                    description="Lifetime in days (1-3650). Omit for a key that never expires.",
                    optional=True,
                    requires_replace=True,
                ),
                Attribute(
                    "key",
                    String(),
                    description="The secret key; known only to the Terraform run that created it.",
                    computed=True,
                    sensitive=True,
                ),
                Attribute("tenant_id", String(), description="Tenant of the key.", computed=True),
                Attribute("status", String(), description="active, expired or revoked.", computed=True),
                Attribute("created_at", String(), description="Creation time (UTC, ISO 8601).", computed=True),
                Attribute("expires_at", String(), description="Expiry (UTC, ISO 8601), or null.", computed=True),
            ],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        name = config.get("name")
        if isinstance(name, str) and not 1 <= len(name) <= 100:
            diags.add_error("Invalid name", "name must have 1 to 100 characters.", path=["name"])
        days = config.get("expires_in_days")
        if isinstance(days, int | float) and (days != int(days) or not 1 <= days <= 3650):
            diags.add_error(
                f"Invalid expires_in_days {days}",
                "expires_in_days must be a whole number of days from 1 to 3650; omit it for a key that never expires.",
                path=["expires_in_days"],
            )

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        body: dict[str, Any] = {"name": planned["name"]}
        if isinstance(planned.get("user_id"), str):
            body["user_id"] = planned["user_id"]
        days = planned.get("expires_in_days")
        if days is not None:
            body["expires_in_days"] = int(days)
        try:
            created = self.provider.client.create_api_key(body)
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"create API key {planned['name']!r}", fields=FIELDS)
            return None
        return key_state(created, key=created["key"], expires_in_days=days)

    def read(self, ctx: ReadContext, current: State) -> State | None:
        try:
            found = self.provider.client.find_api_key(current["id"])
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"read API key {current['id']}", fields=FIELDS)
            return current
        if found is None or found["status"] != LIVE:
            return None  # revoked, expired or deleted outside Terraform: plan creates a new key
        return key_state(found, key=current.get("key"), expires_in_days=current.get("expires_in_days"))

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        # Every argument forces replacement, so Terraform never asks for an in-place update.
        return current

    def delete(self, ctx: DeleteContext, current: State) -> State | None:
        try:
            self.provider.client.revoke_api_key(current["id"])
        except ApiError as exc:
            if not exc.not_found:
                add_api_error(ctx.diagnostics, exc, doing=f"revoke API key {current['id']}", fields=FIELDS)
                return current
        return None

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        try:
            found = self.provider.client.find_api_key(id)
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"import API key {id!r}", fields=FIELDS)
            return None
        if found is None:
            ctx.diagnostics.add_error(
                f"Cannot import API key {id!r}: not found",
                "Use the key's id, the middle part of mk.<id>.<secret> (GET /api/v1/api-keys lists them).",
            )
            return None
        days = _days_between(found.get("created_at"), found.get("expires_at"))
        return key_state(found, key=None, expires_in_days=days)
