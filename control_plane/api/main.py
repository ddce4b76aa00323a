"""The control plane's REST API application."""

from __future__ import annotations

from fastapi import FastAPI

import shared
from control_plane.api.errors import install_error_handlers
from control_plane.api.routes import api_router
from control_plane.settings import Settings, get_settings

API_PREFIX = "/api/v1"

TAGS = [
    {"name": "health", "description": "Liveness; no authentication."},
    {"name": "bootstrap", "description": "Claim a fresh control plane: first tenant, admin and key."},
    {"name": "me", "description": "Who the presented API key belongs to."},
    {"name": "tenants", "description": "Tenants (creating them needs a platform admin)."},
    {"name": "users", "description": "Members of the caller's tenant and their roles."},
    {"name": "api-keys", "description": "API keys; the plaintext is returned once, at creation."},
    {"name": "projects", "description": "Projects group models, feature sets and automations."},
    {"name": "deployments", "description": "Deployments of builds (realtime, batch, streaming) and serving metrics."},
    {"name": "features", "description": "Feature-set definitions, materializations and freshness (no values)."},
    {"name": "join-tokens", "description": "One-time tokens that enroll data-plane agents."},
    {"name": "agents", "description": "Enrolled data-plane agents."},
    {"name": "commands", "description": "Durable commands delivered to agents over their link."},
    {"name": "audit", "description": "The tenant's append-only audit log."},
    {"name": "data-plane", "description": "Short-lived JWTs for an agent's data-plane API."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for `settings` (default: from MALLARD_* environment variables).

    The schema is not migrated here; `python -m control_plane.api` does that before serving.
    """
    app = FastAPI(
        title="Mallard control plane",
        version=shared.__version__,
        description="Authenticate with `Authorization: Bearer <api key>`. Errors are "
        '`{"error": {"code", "message", "field"}}`.',
        openapi_tags=TAGS,
    )
    app.state.settings = settings or get_settings()
    install_error_handlers(app)
    app.include_router(api_router, prefix=API_PREFIX)
    return app
