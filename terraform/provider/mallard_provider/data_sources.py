"""Data sources `mallard_projects` and `mallard_agents`: what exists in the API key's tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tf.iface import Config, DataSource, ReadDataContext, State
from tf.schema import Attribute, Schema
from tf.types import Bool, List, Map, String, TfType
from tf.utils import Diagnostics

from mallard_provider.client import ApiError
from mallard_provider.errors import add_api_error
from mallard_provider.tftypes import Object

if TYPE_CHECKING:
    from mallard_provider.provider import MallardProvider

PROJECT: dict[str, TfType] = {
    "id": String(),
    "name": String(),
    "description": String(),
    "tenant_id": String(),
    "created_at": String(),
    "updated_at": String(),
}
AGENT: dict[str, TfType] = {
    "id": String(),
    "name": String(),
    "tenant_id": String(),
    "hostname": String(),
    "version": String(),
    "capabilities": List(String()),
    "data_plane_url": String(),
    "status": String(),
    "connected": Bool(),
    "last_seen_at": String(),
    "cert_expires_at": String(),
    "revoked_at": String(),
    "created_at": String(),
}
AGENT_STATUSES = ("online", "offline", "revoked")


def _pick(body: dict[str, Any], fields: dict[str, TfType]) -> dict[str, Any]:
    return {name: body.get(name) for name in fields}


class ProjectsDataSource(DataSource):
    """Every project in the tenant, in name order."""

    def __init__(self, provider: MallardProvider) -> None:
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "projects"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            description="The projects in the API key's tenant.",
            attributes=[
                Attribute("projects", List(Object(PROJECT)), description="Projects, by name.", computed=True),
                Attribute("ids", Map(String()), description="Project id by project name.", computed=True),
            ],
        )

    def read(self, ctx: ReadDataContext, config: Config) -> State | None:
        try:
            rows = self.provider.client.list_projects()
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing="list projects", fields={})
            return None
        projects = [_pick(row, PROJECT) for row in rows]
        return {"projects": projects, "ids": {p["name"]: p["id"] for p in projects}}


class AgentsDataSource(DataSource):
    """The tenant's enrolled agents, optionally only those with a given name or status."""

    def __init__(self, provider: MallardProvider) -> None:
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return "agents"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            description="The data-plane agents enrolled in the API key's tenant.",
            attributes=[
                Attribute("name", String(), description="Only agents with this name.", optional=True),
                Attribute("status", String(), description="Only agents online, offline or revoked.", optional=True),
                Attribute("agents", List(Object(AGENT)), description="Matching agents, oldest first.", computed=True),
            ],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        status = config.get("status")
        if isinstance(status, str) and status not in AGENT_STATUSES:
            diags.add_error(
                f"Invalid status {status!r}", f"status must be one of {', '.join(AGENT_STATUSES)}.", path=["status"]
            )

    def read(self, ctx: ReadDataContext, config: Config) -> State | None:
        try:
            rows = self.provider.client.list_agents()
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing="list agents", fields={})
            return None
        name, status = config.get("name"), config.get("status")
        agents = [
            _pick(row, AGENT)
            for row in rows
            if (name is None or row["name"] == name) and (status is None or row["status"] == status)
        ]
        return {"name": name, "status": status, "agents": agents}
