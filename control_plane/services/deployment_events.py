"""What agents report about deployments: `deployment.status` and per-minute `serving.metrics`,
folded into the control plane, and the metrics read back per model.

A malformed payload is logged and skipped, never raised: the event is still stored and acked,
so one bad event cannot block every later event of the agent.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from control_plane.models import Agent, Deployment, ServingMetric, utcnow
from control_plane.models.common import iso
from control_plane.services import audit
from control_plane.services.builds import get_model
from shared import serving as contract
from shared.errors import InvalidInput

log = logging.getLogger("mallard.deployments")
MAX_REPLICAS_REPORTED = 64


def apply_serving_event(session: Session, *, agent: Agent, type_: str, payload: dict[str, Any]) -> None:
    deployment = session.get(Deployment, str(payload.get("deployment_id", "")))
    if deployment is None or deployment.agent_id != agent.id or deployment.tenant_id != agent.tenant_id:
        log.warning(
            "agent %s reported %s for unknown deployment %r; ignored", agent.id, type_, payload.get("deployment_id")
        )
        return
    try:
        if type_ == contract.STATUS_EVENT:
            _apply_status(session, deployment, agent, payload)
        elif type_ == contract.METRICS_EVENT:
            _apply_metrics(session, deployment, agent, payload)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        log.warning("agent %s sent a malformed %s for %s (%s); ignored", agent.id, type_, deployment.id, exc)
        session.expire(deployment)


def _int(value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"expected an integer >= {minimum}, got {value!r}")
    return value


def _optional_int(value: object) -> int | None:
    return None if value is None else _int(value)


def _apply_status(session: Session, deployment: Deployment, agent: Agent, payload: dict[str, Any]) -> None:
    revision = _int(payload.get("revision"))
    if revision < deployment.observed_revision:
        return  # a late report about a state the agent has since moved past
    state = contract.DeploymentState(str(payload.get("state")))
    replicas = payload.get("replicas") or []
    if not isinstance(replicas, list):
        raise TypeError("replicas must be a list")
    clean = [
        {
            "variation": str(r["variation"])[:63],
            "build_id": str(r.get("build_id", ""))[:40],
            "ready": bool(r.get("ready")),
            "restarts": _int(r.get("restarts", 0)),
        }
        for r in replicas[:MAX_REPLICAS_REPORTED]
    ]
    # Progress fields a report leaves out keep their last value (a final SUCCEEDED need not repeat them).
    progress = {key: _optional_int(payload[key]) for key in ("rows_done", "rows_total", "lag") if key in payload}
    previous = deployment.state
    deployment.observed_revision = revision
    deployment.state = state.value
    deployment.message = str(payload["message"])[:500] if payload.get("message") else None
    deployment.replicas_json = json.dumps(clean)
    for key, value in progress.items():
        setattr(deployment, key, value)
    deployment.reported_at = utcnow()
    if state is contract.DeploymentState.STOPPED and deployment.stopped_at is None:
        deployment.stopped_at = deployment.reported_at
    session.add(deployment)
    if state.final and previous != state.value:
        audit.record(
            session,
            tenant_id=deployment.tenant_id,
            actor=f"agent:{agent.id}",
            action=f"deployment.{state.value.lower()}",
            target_type="deployment",
            target_id=deployment.id,
            details={"revision": revision, "message": deployment.message},
        )


def _minute(value: object) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(second=0, microsecond=0)


def _ms(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"expected a latency in ms, got {value!r}")
    return float(value)


def _apply_metrics(session: Session, deployment: Deployment, agent: Agent, payload: dict[str, Any]) -> None:
    minute = _minute(payload["minute"])
    variation = str(payload["variation"])[:63]
    build_id = str(payload.get("build_id", ""))[:40]
    count, errors = _int(payload["count"]), _int(payload["errors"])
    if errors > count:
        raise ValueError("errors cannot exceed count")
    p50, p95, p99 = _ms(payload["p50_ms"]), _ms(payload["p95_ms"]), _ms(payload["p99_ms"])
    row = session.exec(
        select(ServingMetric)
        .where(col(ServingMetric.deployment_id) == deployment.id)
        .where(col(ServingMetric.variation) == variation)
        .where(col(ServingMetric.build_id) == build_id)
        .where(col(ServingMetric.minute) == minute)
    ).first()
    if row is None:
        row = ServingMetric(
            tenant_id=deployment.tenant_id,
            deployment_id=deployment.id,
            model_id=deployment.model_id,
            agent_id=agent.id,
            variation=variation,
            build_id=build_id,
            minute=minute,
        )
    else:
        # A second report for the same minute (e.g. the agent restarted mid-minute): counts add
        # up; percentiles are combined weighted by count, an approximation documented in the API.
        total = row.count + count
        if total:
            p50 = (row.p50_ms * row.count + p50 * count) / total
            p95 = (row.p95_ms * row.count + p95 * count) / total
            p99 = (row.p99_ms * row.count + p99 * count) / total
        count, errors = total, row.errors + errors
    row.count, row.errors = count, errors
    row.p50_ms, row.p95_ms, row.p99_ms = round(p50, 3), round(p95, 3), round(p99, 3)
    row.updated_at = utcnow()
    session.add(row)


def model_metrics(
    session: Session,
    *,
    tenant_id: str,
    model: str,
    since: datetime | None = None,
    variation: str | None = None,
    limit: int = 1440,
) -> dict[str, Any]:
    """Per-minute aggregates of a model's deployments, newest first, with totals over them."""
    model_row = get_model(session, tenant_id=tenant_id, model=model)
    query = select(ServingMetric).where(col(ServingMetric.model_id) == model_row.id)
    query = query.where(col(ServingMetric.tenant_id) == tenant_id)
    if since is not None:
        if since.tzinfo is None:
            raise InvalidInput("since must carry a timezone, e.g. 2026-01-01T00:00:00Z", field="since")
        query = query.where(col(ServingMetric.minute) >= since)
    if variation:
        query = query.where(col(ServingMetric.variation) == variation)
    rows = list(session.exec(query.order_by(col(ServingMetric.minute).desc()).limit(limit)))
    count = sum(r.count for r in rows)
    errors = sum(r.errors for r in rows)
    return {
        "model": model_row.name,
        "model_id": model_row.id,
        "count": count,
        "errors": errors,
        "error_rate": round(errors / count, 6) if count else 0.0,
        "minutes": [
            {
                "minute": iso(r.minute),
                "deployment_id": r.deployment_id,
                "variation": r.variation,
                "build_id": r.build_id,
                "count": r.count,
                "errors": r.errors,
                "error_rate": round(r.errors / r.count, 6) if r.count else 0.0,
                "p50_ms": r.p50_ms,
                "p95_ms": r.p95_ms,
                "p99_ms": r.p99_ms,
            }
            for r in rows
        ],
    }
