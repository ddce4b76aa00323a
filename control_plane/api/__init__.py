"""The control plane's admin REST API (FastAPI) under /api/v1."""

from control_plane.api.main import create_app

__all__ = ["create_app"]
