"""Registered models and builds: creation and dispatch, agent events, filtering, comparison."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from control_plane.models import Agent, Build, BuildTag, Project, RegisteredModel, utcnow
from control_plane.models.common import iso
from control_plane.services import audit
from control_plane.services.commands import create_command
from control_plane.services.join_tokens import validate_name
from shared import builds as contract
from shared.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger("mallard.builds")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
METRIC_FILTER_RE = re.compile(
    r"^(?P<name>[A-Za-z0-9_.:/-]{1,100})\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<value>-?[0-9.eE+-]+)$"
)


# ---- models --------------------------------------------------------------------------------


def create_model(
    session: Session, *, tenant_id: str, name: str, project: str, description: str, actor: str
) -> RegisteredModel:
    validate_name(name)
    project_row = _project(session, tenant_id=tenant_id, project=project)
    if session.exec(
        select(RegisteredModel.id)
        .where(col(RegisteredModel.tenant_id) == tenant_id)
        .where(col(RegisteredModel.name) == name)
    ).first():
        raise Conflict(f"a model named {name!r} already exists", field="name")
    model = RegisteredModel(
        tenant_id=tenant_id, project_id=project_row.id, name=name, description=description, created_by=actor
    )
    session.add(model)
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="model.create",
        target_type="model",
        target_id=model.id,
        details={"name": name, "project_id": project_row.id},
    )
    return model


def _project(session: Session, *, tenant_id: str, project: str) -> Project:
    row = session.get(Project, project)
    if row is None or row.tenant_id != tenant_id:
        row = session.exec(
            select(Project).where(col(Project.tenant_id) == tenant_id).where(col(Project.name) == project)
        ).first()
    if row is None:
        raise NotFound(f"project {project!r} not found; create it with `mallard projects create`", field="project")
    return row


def get_model(session: Session, *, tenant_id: str, model: str) -> RegisteredModel:
    row = session.get(RegisteredModel, model)
    if row is None or row.tenant_id != tenant_id:
        row = session.exec(
            select(RegisteredModel)
            .where(col(RegisteredModel.tenant_id) == tenant_id)
            .where(col(RegisteredModel.name) == model)
        ).first()
    if row is None:
        raise NotFound(f"model {model!r} not found; create it with `mallard models create`", field="model")
    return row


def list_models(session: Session, *, tenant_id: str, project: str | None = None) -> list[RegisteredModel]:
    query = select(RegisteredModel).where(col(RegisteredModel.tenant_id) == tenant_id)
    if project:
        query = query.where(
            col(RegisteredModel.project_id) == _project(session, tenant_id=tenant_id, project=project).id
        )
    return list(session.exec(query.order_by(col(RegisteredModel.name))))


def model_view(model: RegisteredModel) -> dict[str, Any]:
    return {
        "id": model.id,
        "name": model.name,
        "project_id": model.project_id,
        "description": model.description,
        "created_by": model.created_by,
        "created_at": iso(model.created_at),
    }


# ---- builds --------------------------------------------------------------------------------


def create_build(
    session: Session,
    *,
    tenant_id: str,
    model: str,
    agent_id: str,
    context_digest: str,
    builder: str,
    params: dict[str, str],
    tags: list[str],
    actor: str,
    command_ttl_seconds: int,
) -> Build:
    """Record a QUEUED build and queue the `build.run` command for its agent, atomically."""
    model_row = get_model(session, tenant_id=tenant_id, model=model)
    if not DIGEST_RE.match(context_digest):
        raise InvalidInput("context_digest must look like sha256:<64 hex digits>", field="context_digest")
    if builder not in {b.value for b in contract.Builder}:
        raise InvalidInput(f"builder must be one of {', '.join(b.value for b in contract.Builder)}", field="builder")
    for tag in tags:
        if not TAG_RE.match(tag):
            raise InvalidInput(f"tags: {tag!r} is not valid; use letters, digits and _.:/- (up to 100)", field="tags")
    for key, value in params.items():
        if not key or len(key) > 100 or len(str(value)) > 500:
            raise InvalidInput(
                f"params: {key!r} is not valid; names 1-100 characters, values up to 500", field="params"
            )
    agent = session.get(Agent, agent_id)
    if agent is None or agent.tenant_id != tenant_id:
        raise NotFound(f"agent {agent_id} not found", field="agent_id")
    if agent.revoked_at is not None:
        raise Conflict(f"agent {agent_id} has been revoked", field="agent_id")
    build = Build(
        tenant_id=tenant_id,
        model_id=model_row.id,
        agent_id=agent.id,
        builder=builder,
        context_digest=context_digest,
        params_json=json.dumps(params, sort_keys=True),
        tags_json=json.dumps(sorted(set(tags))),
        created_by=actor,
    )
    session.add(build)
    session.flush()
    for tag in sorted(set(tags)):
        session.add(BuildTag(build_id=build.id, tag=tag))
    spec: contract.RunSpec = {
        "build_id": build.id,
        "tenant_id": tenant_id,
        "model": model_row.name,
        "context_digest": context_digest,
        "builder": builder,
        "params": params,
        "tags": sorted(set(tags)),
    }
    command = create_command(
        session,
        agent=agent,
        type_=contract.RUN_COMMAND,
        spec=dict(spec),
        actor=actor,
        ttl_seconds=command_ttl_seconds,
        internal=True,
    )
    build.command_id = command.id
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="build.create",
        target_type="build",
        target_id=build.id,
        details={"model": model_row.name, "builder": builder, "agent_id": agent.id},
    )
    return build


def get_build(session: Session, *, tenant_id: str, build_id: str) -> Build:
    build = session.get(Build, build_id)
    if build is None or build.tenant_id != tenant_id:
        raise NotFound(f"build {build_id} not found", field="build_id")
    return build


def cancel_build(session: Session, *, tenant_id: str, build_id: str, actor: str, command_ttl_seconds: int) -> Build:
    build = get_build(session, tenant_id=tenant_id, build_id=build_id)
    if contract.BuildStatus(build.status).final:
        raise Conflict(f"build {build_id} already finished with status {build.status}", field="build_id")
    if build.cancel_requested_at is None:
        build.cancel_requested_at = utcnow()
        session.add(build)
        agent = session.get(Agent, build.agent_id)
        assert agent is not None
        if agent.revoked_at is None:
            cancel: contract.CancelSpec = {"build_id": build.id}
            create_command(
                session,
                agent=agent,
                type_=contract.CANCEL_COMMAND,
                spec=dict(cancel),
                actor=actor,
                ttl_seconds=command_ttl_seconds,
                internal=True,
            )
        else:
            _finish(build, status=contract.BuildStatus.CANCELLED, error="cancelled; the agent had been revoked")
        audit.record(
            session, tenant_id=tenant_id, actor=actor, action="build.cancel", target_type="build", target_id=build.id
        )
    return build


def list_builds(
    session: Session,
    *,
    tenant_id: str,
    model: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    metric: str | None = None,
    limit: int = 50,
) -> list[Build]:
    query = select(Build).where(col(Build.tenant_id) == tenant_id)
    if model:
        query = query.where(col(Build.model_id) == get_model(session, tenant_id=tenant_id, model=model).id)
    if status:
        status = status.upper()
        if status not in {s.value for s in contract.BuildStatus}:
            raise InvalidInput(
                f"status must be one of {', '.join(s.value for s in contract.BuildStatus)}", field="status"
            )
        query = query.where(col(Build.status) == status)
    if tag:
        query = query.where(col(Build.id).in_(select(BuildTag.build_id).where(col(BuildTag.tag) == tag)))
    rows = list(session.exec(query.order_by(col(Build.created_at).desc())))
    if metric:
        rows = [b for b in rows if _metric_matches(b, metric)]
    return rows[: max(1, min(limit, 500))]


def _metric_matches(build: Build, expression: str) -> bool:
    match = METRIC_FILTER_RE.match(expression.strip())
    if not match:
        raise InvalidInput("metric filter must look like NAME>VALUE (operators > >= < <= == !=)", field="metric")
    value = json.loads(build.metrics_json or "{}").get(match["name"])
    if value is None:
        return False
    target = float(match["value"])
    return {
        ">": value > target,
        ">=": value >= target,
        "<": value < target,
        "<=": value <= target,
        "==": value == target,
        "!=": value != target,
    }[match["op"]]


def build_view(build: Build, *, model_name: str | None = None, data_plane_url: str | None = None) -> dict[str, Any]:
    return {
        "id": build.id,
        "model_id": build.model_id,
        "model": model_name,
        "agent_id": build.agent_id,
        "data_plane_url": data_plane_url,
        "status": build.status,
        "builder": build.builder,
        "context_digest": build.context_digest,
        "params": json.loads(build.params_json or "{}"),
        "metrics": json.loads(build.metrics_json or "{}"),
        "tags": json.loads(build.tags_json or "[]"),
        "phases": json.loads(build.phases_json or "[]"),
        "failed_phase": build.failed_phase,
        "error_summary": build.error_summary,
        "artifact_digest": build.artifact_digest,
        "artifact_uri": build.artifact_uri,
        "image": build.image,
        "created_by": build.created_by,
        "created_at": iso(build.created_at),
        "started_at": iso(build.started_at),
        "finished_at": iso(build.finished_at),
        "duration_seconds": build.duration_seconds,
        "cancel_requested": build.cancel_requested_at is not None,
    }


def compare_builds(a: Build, b: Build) -> dict[str, Any]:
    def diff(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
        keys = sorted(set(left) | set(right))
        return {k: {"a": left.get(k), "b": right.get(k)} for k in keys if left.get(k) != right.get(k)}

    metrics_a, metrics_b = json.loads(a.metrics_json), json.loads(b.metrics_json)
    delta = {k: metrics_b[k] - metrics_a[k] for k in sorted(set(metrics_a) & set(metrics_b))}
    return {
        "a": a.id,
        "b": b.id,
        "params": diff(json.loads(a.params_json), json.loads(b.params_json)),
        "metrics": diff(metrics_a, metrics_b),
        "metric_delta": delta,
        "same_context": a.context_digest == b.context_digest,
        "same_artifact": a.artifact_digest is not None and a.artifact_digest == b.artifact_digest,
    }


# ---- agent events --------------------------------------------------------------------------


def apply_build_event(session: Session, *, agent: Agent, type_: str, payload: dict[str, Any]) -> None:
    """Fold one `build.*` event into its build. Events for builds this agent does not own are ignored.

    A malformed payload is logged and skipped, never raised: the event is still stored and
    acked, so one bad event cannot block every later event of the agent.
    """
    build = session.get(Build, str(payload.get("build_id", "")))
    if build is None or build.agent_id != agent.id or build.tenant_id != agent.tenant_id:
        log.warning("agent %s reported %s for unknown build %r; ignored", agent.id, type_, payload.get("build_id"))
        return
    if contract.BuildStatus(build.status).final:
        return  # e.g. failed by lease expiry before the agent came back
    try:
        if type_ == contract.PHASE_EVENT:
            _apply_phase(build, payload)
        elif type_ == contract.FINISHED_EVENT:
            _apply_finished(session, build, agent, payload)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        log.warning("agent %s sent a malformed %s for build %s (%s); ignored", agent.id, type_, build.id, exc)
        session.expire(build)
        return
    session.add(build)


def _apply_phase(build: Build, payload: dict[str, Any]) -> None:
    raw_at = payload.get("at_unix_ms")
    at = datetime.fromtimestamp(int(raw_at) / 1000, UTC) if raw_at else utcnow()
    phases = json.loads(build.phases_json or "[]")
    phases.append(
        {"phase": str(payload.get("phase", ""))[:40], "state": str(payload.get("state", ""))[:16], "at": iso(at)}
    )
    build.phases_json = json.dumps(phases[-100:])
    if build.status == contract.BuildStatus.QUEUED:
        build.status = contract.BuildStatus.RUNNING
        build.started_at = at


def _apply_finished(session: Session, build: Build, agent: Agent, payload: dict[str, Any]) -> None:
    status = contract.BuildStatus(str(payload.get("status")))
    params, metrics = payload.get("params") or {}, payload.get("metrics") or {}
    if not isinstance(params, dict) or not isinstance(metrics, dict):
        raise TypeError("params and metrics must be JSON objects")
    build.params_json = json.dumps(contract.clean_params(params), sort_keys=True)
    build.metrics_json = json.dumps(contract.clean_metrics(metrics), sort_keys=True)
    build.artifact_digest = _short(payload.get("artifact_digest"), 80)
    build.artifact_uri = _short(payload.get("artifact_uri"), 300)
    build.image = _short(payload.get("image"), 200)
    build.failed_phase = _short(payload.get("failed_phase"), 40)
    _finish(build, status=status, error=payload.get("error_summary"), agent_duration=payload.get("duration_seconds"))
    audit.record(
        session,
        tenant_id=build.tenant_id,
        actor=f"agent:{agent.id}",
        action="build.finished",
        target_type="build",
        target_id=build.id,
        details={"status": build.status, "failed_phase": build.failed_phase},
    )


def fail_refused_build(session: Session, *, agent_id: str, build_id: str, error: str) -> None:
    """The agent refused the `build.run` command (acked as failed): the build fails with its reason."""
    build = session.get(Build, build_id)
    if build is None or build.agent_id != agent_id or contract.BuildStatus(build.status).final:
        return
    _finish(
        build, status=contract.BuildStatus.FAILED, error=f"the agent refused the build: {error or 'no reason given'}"
    )
    session.add(build)
    audit.record(
        session,
        tenant_id=build.tenant_id,
        actor=f"agent:{agent_id}",
        action="build.refused",
        target_type="build",
        target_id=build.id,
    )


def _short(value: object, limit: int) -> str | None:
    return None if value in (None, "") else str(value)[:limit]


def _finish(build: Build, *, status: contract.BuildStatus, error: object, agent_duration: object = None) -> None:
    """Final status. The agent's own measured duration wins over the control plane's clock,
    which would also count any time the event spent in the outbox during an outage."""
    now = utcnow()
    build.status = status
    build.finished_at = now
    build.error_summary = contract.summarize_error(str(error)) if error else None
    start = build.started_at or build.created_at
    measured = (
        agent_duration if isinstance(agent_duration, int | float) and not isinstance(agent_duration, bool) else None
    )
    if measured is not None and 0 <= measured < 7 * 24 * 3600:
        build.duration_seconds = round(float(measured), 3)
    else:
        build.duration_seconds = round((now - start).total_seconds(), 3)


def fail_expired_leases(session: Session, *, lease_seconds: float) -> list[str]:
    """Builds whose agent stopped reporting for `lease_seconds` are failed (or cancelled if asked)."""
    cutoff = utcnow() - timedelta(seconds=lease_seconds)
    open_builds = session.exec(
        select(Build, Agent)
        .join(Agent, col(Agent.id) == col(Build.agent_id))
        .where(col(Build.status).in_([contract.BuildStatus.QUEUED.value, contract.BuildStatus.RUNNING.value]))
        .where(
            (col(Agent.last_seen_at).is_(None))
            | (col(Agent.last_seen_at) < cutoff)
            | (col(Agent.revoked_at).is_not(None))
        )
        .where(col(Build.created_at) < cutoff)
    ).all()
    failed: list[str] = []
    for build, agent in open_builds:
        if build.cancel_requested_at is not None:
            _finish(build, status=contract.BuildStatus.CANCELLED, error="cancelled; the agent stopped reporting")
        else:
            _finish(
                build,
                status=contract.BuildStatus.FAILED,
                error=f"lease expired: agent {agent.id} stopped reporting for {lease_seconds:.0f}s",
            )
        session.add(build)
        audit.record(
            session,
            tenant_id=build.tenant_id,
            actor="system:scheduler",
            action="build.lease_expired",
            target_type="build",
            target_id=build.id,
            details={"status": build.status},
        )
        failed.append(build.id)
    return failed
