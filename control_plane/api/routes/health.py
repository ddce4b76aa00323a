"""Liveness, without authentication (load balancers and `mallard dev up` poll it)."""

from __future__ import annotations

from fastapi import APIRouter

import shared
from control_plane.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health() -> Health:
    return Health(status="ok", version=shared.__version__)
