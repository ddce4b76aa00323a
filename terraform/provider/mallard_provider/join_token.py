"""`mallard_agent_join_token`: a one-time, short-lived token that enrolls one data-plane agent.

The secret is returned once, at creation, and kept (sensitive) in state. A token revoked outside
Terraform reads as gone, so the next plan mints a new one. A token that was used or expired stays
in state even after the control plane purges it: it did its job; `terraform apply -replace=...`
mints a fresh one. Destroying a token revokes it if unused; a used token cannot be revoked, so
destroy forgets it, and revokes the agent it enrolled when `revoke_agent_on_destroy` is set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tf.iface import (
    Config,
    CreateContext,
    DeleteContext,
    ImportContext,
    PlanContext,
    ReadContext,
    State,
    UpdateContext,
)
from tf.schema import Attribute, Schema
from tf.types import Bool, String
from tf.utils import Diagnostics

from mallard_provider.base import MallardResource
from mallard_provider.client import ApiError
from mallard_provider.errors import add_api_error, check_name
from mallard_provider.tftypes import parse_duration

FIELDS = {"name": "name", "ttl_seconds": "ttl", "ttl": "ttl", "token_id": "id"}
MIN_TTL_SECONDS = 60
FINISHED = ("redeemed", "expired")


def token_state(body: dict[str, Any], *, prior: State | None, token: str | None, ttl: str | None) -> State:
    prior = prior or {}
    return {
        "id": body["id"],
        "name": body["name"],
        "ttl": ttl,
        "revoke_agent_on_destroy": prior.get("revoke_agent_on_destroy"),
        "token": token,
        "tenant_id": body["tenant_id"],
        "status": body["status"],
        "created_at": body.get("created_at"),
        "expires_at": body.get("expires_at"),
        "redeemed_at": body.get("redeemed_at"),
        "agent_id": body.get("agent_id"),
    }


def _seconds_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    delta = datetime.fromisoformat(end.replace("Z", "+00:00")) - datetime.fromisoformat(start.replace("Z", "+00:00"))
    return round(delta.total_seconds())


class JoinTokenResource(MallardResource):
    """A join token for an agent named `name` (needs an admin API key)."""

    @classmethod
    def get_name(cls) -> str:
        return "agent_join_token"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            description="A one-time join token for a data-plane agent. Changing name or ttl mints a new token.",
            attributes=[
                Attribute("id", String(), description="Token id (mjt.<id>.<secret>).", computed=True),
                Attribute(
                    "name",
                    String(),
                    description="Name of the agent the token enrolls (lowercase DNS label).",
                    required=True,
                    requires_replace=True,
                ),
                Attribute(
                    "ttl",
                    String(),
                    description="How long the token stays valid, e.g. 15m, 2h or 1d (at least 60s). "
                    "Default: the control plane's (15m unless configured).",
                    optional=True,
                    requires_replace=True,
                ),
                Attribute(
                    "revoke_agent_on_destroy",
                    Bool(),
                    description="When the token was used, destroying it also revokes the agent it enrolled.",
                    optional=True,
                ),
                Attribute(
                    "token",
                    String(),
                    description="The secret token to give the agent (MALLARD_AGENT_JOIN_TOKEN).",
                    computed=True,
                    sensitive=True,
                ),
                Attribute("tenant_id", String(), description="Tenant the agent joins.", computed=True),
                Attribute("status", String(), description="active, redeemed, expired or revoked.", computed=True),
                Attribute("created_at", String(), description="Creation time (UTC, ISO 8601).", computed=True),
                Attribute("expires_at", String(), description="Expiry (UTC, ISO 8601).", computed=True),
                Attribute("redeemed_at", String(), description="When an agent used it, or null.", computed=True),
                Attribute("agent_id", String(), description="The agent it enrolled, or null.", computed=True),
            ],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        check_name(diags, config)
        ttl = config.get("ttl")
        if isinstance(ttl, str):
            try:
                seconds = parse_duration(ttl)
            except ValueError as exc:
                diags.add_error(f"Invalid ttl {ttl!r}", str(exc), path=["ttl"])
                return
            if seconds < MIN_TTL_SECONDS:
                diags.add_error(f"Invalid ttl {ttl!r}", "ttl must be at least 60s.", path=["ttl"])

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        # "15m" and "900s" are the same lifetime: keep the recorded spelling rather than replace.
        if current is not None and _same_duration(current.get("ttl"), planned.get("ttl")):
            planned["ttl"] = current["ttl"]
        return planned

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        body: dict[str, Any] = {"name": planned["name"]}
        if isinstance(planned.get("ttl"), str):
            body["ttl_seconds"] = parse_duration(planned["ttl"])
        try:
            created = self.provider.client.create_join_token(body)
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"create join token {planned['name']!r}", fields=FIELDS)
            return None
        return token_state(created, prior=planned, token=created["token"], ttl=planned.get("ttl"))

    def read(self, ctx: ReadContext, current: State) -> State | None:
        try:
            found = self.provider.client.find_join_token(current["id"])
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"read join token {current['id']}", fields=FIELDS)
            return current
        if found is None:
            # Purged by the control plane: a finished token stays recorded; an active one is gone.
            return current if current.get("status") in FINISHED else None
        if found["status"] == "revoked":
            return None
        return token_state(found, prior=current, token=current.get("token"), ttl=current.get("ttl"))

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        # Only revoke_agent_on_destroy can change in place; it lives in state alone.
        return {**current, "revoke_agent_on_destroy": planned.get("revoke_agent_on_destroy")}

    def delete(self, ctx: DeleteContext, current: State) -> State | None:
        client = self.provider.client
        try:
            found = client.find_join_token(current["id"])
            if found is not None and found["status"] != "redeemed":
                try:
                    client.revoke_join_token(current["id"])
                    return None
                except ApiError as exc:
                    if exc.status != 409:  # 409: redeemed since we looked
                        raise
                    found = client.find_join_token(current["id"])
            agent_id = (found or current).get("agent_id")
            if agent_id and current.get("revoke_agent_on_destroy"):
                try:
                    client.revoke_agent(agent_id)
                except ApiError as exc:
                    if not exc.not_found:
                        raise
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"destroy join token {current['id']}", fields=FIELDS)
            return current
        return None

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        try:
            found = self.provider.client.find_join_token(id)
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"import join token {id!r}", fields=FIELDS)
            return None
        if found is None:
            ctx.diagnostics.add_error(
                f"Cannot import join token {id!r}: not found",
                "Use the token's id (the middle part of mjt.<id>.<secret>), as `mallard agents token list` shows it.",
            )
            return None
        seconds = _seconds_between(found.get("created_at"), found.get("expires_at"))
        return token_state(found, prior=None, token=None, ttl=f"{seconds}s" if seconds else None)


def _same_duration(a: Any, b: Any) -> bool:
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    try:
        return parse_duration(a) == parse_duration(b)
    except ValueError:
        return False
