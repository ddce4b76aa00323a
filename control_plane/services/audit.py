"""Append a row to the audit log inside the caller's transaction."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from control_plane.models import AuditLog


def record(
    session: Session,
    *,
    tenant_id: str | None,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditLog(
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details_json=json.dumps(details or {}, sort_keys=True, default=str),
        )
    )
