"""What the route-enumerating tests know about every /api/v1 route: how to fill in its path and a valid body.

A new route that is missing here makes those tests fail, rather than silently going untested.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from tests.control_plane.api.conftest import TenantWorld
from tests.helpers.feature_defs import batch_definition

PREFIX = "/api/v1"


@dataclass(frozen=True)
class ApiRoute:
    method: str
    path: str  # the full template, e.g. /api/v1/users/{user_id}
    name: str
    params: tuple[str, ...]
    has_body: bool

    def url(self, world: TenantWorld) -> str:
        return self.path.format(**{p: PATH_PARAMS[p](world) for p in self.params})

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# Which of a tenant's objects each path parameter names.
PATH_PARAMS: dict[str, Callable[[TenantWorld], str]] = {
    "user_id": lambda w: w.member_user_id,
    "key_id": lambda w: w.member_key_id,
    "project_id_or_name": lambda w: w.project_id,
    "token_id": lambda w: w.join_token_id,
    "agent_id": lambda w: w.agent_id,
    "command_id": lambda w: w.command_id,
    "model_id_or_name": lambda w: w.model_id,
    "build_id": lambda w: w.build_id,
    "other_build_id": lambda w: w.other_build_id,
    "deployment_id": lambda w: w.deployment_id,
    "feature_set": lambda w: w.feature_set_id,
    "materialization_id": lambda w: w.materialization_id,
}

# A body each route accepts (by route name).
VALID_BODIES: dict[str, dict[str, Any]] = {
    "bootstrap": {"tenant": "gamma", "email": "root@gamma.example"},
    "create_tenant": {"name": "gamma", "admin_email": "admin@gamma.example"},
    "add_user": {"email": "new@people.example", "role": "member"},
    "change_user_role": {"role": "viewer"},
    "create_api_key": {"name": "another-key"},
    "create_project": {"name": "another-project"},
    "update_project": {"description": "changed"},
    "create_join_token": {"name": "another-agent", "ttl_seconds": 600},
    "create_command": {"type": "ping", "spec": {}},
    "create_model": {"name": "another-model", "project": "alpha-project"},
    "create_build": {"agent_id": "agt_0000000000000000", "context_digest": "sha256:" + "a" * 64, "builder": "local"},
    "create_deployment": {
        "model": "alpha-model",
        "kind": "realtime",
        "build": "bld_0000000000000000",
        "weight": 80,
        "replicas": 2,
        "shadow": False,
    },
    "apply_feature_sets": {"project": "alpha-project", "definitions": [batch_definition("trips")]},
    "materialize_feature_set": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
}

# Query parameters that keep a call fast (waiting routes must not wait in these tests).
QUERY: dict[str, dict[str, Any]] = {"describe_agent": {"timeout": 0}}


def api_routes(app: FastAPI) -> list[ApiRoute]:
    """Every (method, route) under /api/v1, including routes of included routers."""
    try:
        from fastapi.routing import iter_route_contexts

        entries: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:  # FastAPI before lazily included routers: app.routes is already flat
        entries = list(app.routes)
    found: list[ApiRoute] = []
    for entry in entries:
        path = getattr(entry, "path", None) or ""
        if not path.startswith(PREFIX):
            continue
        original = getattr(entry, "original_route", entry)
        for method in sorted(set(getattr(entry, "methods", None) or ()) - {"HEAD", "OPTIONS"}):
            found.append(
                ApiRoute(
                    method=method,
                    path=path,
                    name=str(entry.name),
                    params=tuple(re.findall(r"{(\w+)}", path)),
                    has_body=getattr(original, "body_field", None) is not None,
                )
            )
    return found


def request_kwargs(route: ApiRoute) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if route.has_body:
        kwargs["json"] = VALID_BODIES[route.name]
    if route.name in QUERY:
        kwargs["params"] = QUERY[route.name]
    return kwargs
