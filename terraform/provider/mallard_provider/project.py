"""`mallard_project`: a project in the API key's tenant.

The API only lets a project's description change (PATCH), so a new name replaces the project.
"""

from __future__ import annotations

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
from tf.types import String, Unknown
from tf.utils import Diagnostics

from mallard_provider.base import MallardResource
from mallard_provider.client import ApiError
from mallard_provider.errors import add_api_error, check_name

FIELDS = {"name": "name", "description": "description", "project": "id"}


def project_state(body: dict[str, Any]) -> State:
    return {
        "id": body["id"],
        "name": body["name"],
        "description": body.get("description") or "",
        "tenant_id": body["tenant_id"],
        "created_at": body.get("created_at"),
        "updated_at": body.get("updated_at"),
    }


class ProjectResource(MallardResource):
    """A project: the home of a tenant's models, feature sets and automations."""

    @classmethod
    def get_name(cls) -> str:
        return "project"

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(
            description="A Mallard project. Changing `name` replaces the project (the API cannot rename one).",
            attributes=[
                Attribute("id", String(), description="Project id (prj_...).", computed=True),
                Attribute(
                    "name",
                    String(),
                    description="Lowercase DNS label, unique in the tenant.",
                    required=True,
                    requires_replace=True,
                ),
                Attribute(
                    "description",
                    String(),
                    description="Free text, at most 2000 characters.",
                    optional=True,
                    computed=True,
                    default="",
                ),
                Attribute("tenant_id", String(), description="Tenant of the API key.", computed=True),
                Attribute("created_at", String(), description="Creation time (UTC, ISO 8601).", computed=True),
                Attribute("updated_at", String(), description="Last change (UTC, ISO 8601).", computed=True),
            ],
        )

    def validate(self, diags: Diagnostics, type_name: str, config: Config) -> None:
        super().validate(diags, type_name, config)
        check_name(diags, config)
        description = config.get("description")
        if isinstance(description, str) and len(description) > 2000:
            diags.add_error(
                "description is too long",
                f"description has {len(description)} characters; the limit is 2000.",
                path=["description"],
            )

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        if current is not None and "description" in ctx.changed_fields:
            planned["updated_at"] = Unknown  # the API stamps it
        return planned

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        try:
            body = self.provider.client.create_project(name=planned["name"], description=planned["description"] or "")
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"create project {planned['name']!r}", fields=FIELDS)
            return None
        return project_state(body)

    def read(self, ctx: ReadContext, current: State) -> State | None:
        try:
            return project_state(self.provider.client.get_project(current["id"]))
        except ApiError as exc:
            if exc.not_found:
                return None  # deleted outside Terraform: plan will create it again
            add_api_error(ctx.diagnostics, exc, doing=f"read project {current['id']}", fields=FIELDS)
            return current

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        try:
            body = self.provider.client.update_project(current["id"], description=planned["description"] or "")
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"update project {current['name']!r}", fields=FIELDS)
            return current
        return project_state(body)

    def delete(self, ctx: DeleteContext, current: State) -> State | None:
        try:
            self.provider.client.delete_project(current["id"])
        except ApiError as exc:
            if not exc.not_found:
                add_api_error(ctx.diagnostics, exc, doing=f"delete project {current['name']!r}", fields=FIELDS)
                return current  # still there: keep it in state
        return None

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        try:
            return project_state(self.provider.client.get_project(id))
        except ApiError as exc:
            add_api_error(ctx.diagnostics, exc, doing=f"import project {id!r}", fields={"project": "id"})
            return None
