"""Folding the agent's `features.*` events into materialization jobs and freshness (metadata only)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from control_plane.models import Agent, FeatureMaterialization, FeatureSetDefinition, Project, utcnow
from shared import features as contract

log = logging.getLogger("mallard.features")
Status = contract.MaterializationStatus
MAX_COUNT = 2**62


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"a count must be a non-negative integer, got {value!r}")
    return value


def apply_feature_event(session: Session, *, agent: Agent, type_: str, payload: dict[str, Any]) -> None:
    """Apply one `features.*` event. Malformed or foreign ones are logged and skipped, never raised:
    the event is still stored and acked, so one bad event cannot block the agent's later events."""
    try:
        if type_ == contract.MATERIALIZATION_EVENT:
            _apply_materialization(session, agent, payload)
        elif type_ == contract.FRESHNESS_EVENT:
            _apply_freshness(session, agent, payload)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        log.warning("agent %s sent a malformed %s (%s); ignored", agent.id, type_, exc)


def _apply_materialization(session: Session, agent: Agent, payload: dict[str, Any]) -> None:
    job = session.get(FeatureMaterialization, str(payload.get("job_id", "")))
    if job is None or job.agent_id != agent.id or job.tenant_id != agent.tenant_id:
        log.warning("agent %s reported a materialization %r it does not own; ignored", agent.id, payload.get("job_id"))
        return
    if Status(job.status).final:
        return
    status = Status(str(payload.get("status")))
    rows_done, rows_total = _count(payload.get("rows_done", 0)), _count(payload.get("rows_total"))
    at = _time(payload.get("at")) or utcnow()
    job.rows_done = max(job.rows_done, rows_done or 0)
    if rows_total is not None:
        job.rows_total = rows_total
    if job.started_at is None and status in (Status.RUNNING, Status.SUCCEEDED, Status.FAILED):
        job.started_at = at
    job.status = status
    if status.final:
        job.finished_at = at
        error = payload.get("error_summary")
        job.error_summary = contract.summarize_error(str(error)) if error else None
    session.add(job)


def _apply_freshness(session: Session, agent: Agent, payload: dict[str, Any]) -> None:
    project = session.exec(
        select(Project)
        .where(col(Project.tenant_id) == agent.tenant_id)
        .where(col(Project.name) == str(payload.get("project", "")))
    ).first()
    row = None
    if project is not None:
        row = session.exec(
            select(FeatureSetDefinition)
            .where(col(FeatureSetDefinition.project_id) == project.id)
            .where(col(FeatureSetDefinition.name) == str(payload.get("name", "")))
            .where(col(FeatureSetDefinition.version) == int(payload.get("version", 0)))
        ).first()
    if row is None or row.agent_id != agent.id:
        log.warning("agent %s reported freshness of an unknown feature set %r; ignored", agent.id, payload.get("name"))
        return
    at = _time(payload.get("at")) or utcnow()
    if row.freshness_reported_at is not None and at < row.freshness_reported_at:
        return  # an older report delivered late
    row.last_materialized_at = _time(payload.get("last_materialized_at"))
    row.offline_rows = _count(payload.get("offline_rows"))
    row.online_keys = _count(payload.get("online_keys"))
    row.freshness_reported_at = at
    session.add(row)
