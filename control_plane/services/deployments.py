"""Deployments: the desired state of a served model, sent whole to its agent on every change.

A model has at most one active deployment per kind (realtime, batch, streaming). Deploying a
build as a variation adds or replaces that variation and bumps the revision; the agent
reconciles to the newest revision it has seen and reports back with `deployment.status`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlmodel import Session, col, select

from control_plane.models import Agent, Build, Deployment, DeploymentRevision, RegisteredModel, utcnow
from control_plane.services import audit
from control_plane.services.builds import get_model
from control_plane.services.commands import create_command
from control_plane.services.deployment_requests import DEFAULT_BATCH_ROWS, validate_request
from shared import serving as contract
from shared.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger("mallard.deployments")

DEFAULT_TIMEOUT_MS = 10_000
# Desired state must reach an agent that was offline for a while: deployment commands outlive
# the default command TTL (the agent ignores revisions older than one it has applied).
MIN_COMMAND_TTL_SECONDS = 7 * 24 * 3600


def _active(session: Session, *, tenant_id: str, model_id: str, kind: str) -> Deployment | None:
    """The deployment a deploy changes. A FAILED one stays active (a new revision may fix it);
    a finished batch job (SUCCEEDED) or a stopped deployment does not."""
    final = [contract.DeploymentState.SUCCEEDED.value, contract.DeploymentState.STOPPED.value]
    return session.exec(
        select(Deployment)
        .where(col(Deployment.tenant_id) == tenant_id)
        .where(col(Deployment.model_id) == model_id)
        .where(col(Deployment.kind) == kind)
        .where(col(Deployment.desired) == "running")
        .where(col(Deployment.state).not_in(final))
        .order_by(col(Deployment.created_at).desc())
    ).first()


def _deployable_build(session: Session, *, tenant_id: str, model: RegisteredModel, build_id: str) -> Build:
    build = session.get(Build, build_id)
    if build is None or build.tenant_id != tenant_id:
        raise NotFound(f"build {build_id} not found", field="build")
    if build.model_id != model.id:
        raise InvalidInput(f"build {build_id} is a build of another model, not of {model.name!r}", field="build")
    if build.status != "SUCCEEDED" or not build.artifact_digest:
        raise Conflict(
            f"build {build_id} is {build.status}; only a SUCCEEDED build with an artifact can be deployed",
            field="build",
        )
    return build


def deploy(
    session: Session,
    *,
    tenant_id: str,
    model: str,
    kind: str,
    build: str,
    actor: str,
    command_ttl_seconds: int,
    variation: str = "default",
    weight: int | None = None,
    shadow: bool = False,
    replicas: int | None = None,
    runtime: str | None = None,
    logging_enabled: bool | None = None,
    timeout_ms: int | None = None,
    batch: dict[str, Any] | None = None,
    streaming: dict[str, Any] | None = None,
) -> tuple[Deployment, bool]:
    """Deploy `build` as `variation` of the model's active deployment of `kind` (created if none).

    `weight` and `replicas` of None keep the variation's current values (new: 100 and 1), so
    redeploying a new build does not reset a traffic split or a scale.
    `runtime`, `logging_enabled` and `timeout_ms` apply to the whole deployment; None keeps the
    current value. Returns (deployment, created).
    """
    validate_request(
        kind=kind,
        variation=variation,
        weight=weight,
        replicas=replicas,
        runtime=runtime,
        timeout_ms=timeout_ms,
        batch=batch,
        streaming=streaming,
    )
    model_row = get_model(session, tenant_id=tenant_id, model=model)
    build_row = _deployable_build(session, tenant_id=tenant_id, model=model_row, build_id=build)
    agent = session.get(Agent, build_row.agent_id)
    if agent is None or agent.revoked_at is not None:
        raise Conflict(f"the agent that holds build {build}'s artifact has been revoked", field="build")
    deployment = _active(session, tenant_id=tenant_id, model_id=model_row.id, kind=kind)
    created = deployment is None
    if deployment is None:
        name = model_row.name if kind == contract.DeploymentKind.REALTIME else f"{model_row.name}-{kind}"
        deployment = Deployment(
            tenant_id=tenant_id,
            project_id=model_row.project_id,
            model_id=model_row.id,
            agent_id=agent.id,
            name=name[:63],
            kind=kind,
            revision=0,
            created_by=actor,
        )
    elif deployment.agent_id != agent.id:
        raise Conflict(
            f"build {build} was built by agent {agent.id}, but deployment {deployment.id} runs on agent "
            f"{deployment.agent_id}; undeploy it first or deploy a build made there",
            field="build",
        )
    runtime = runtime or deployment.runtime or contract.Runtime.LOCAL.value
    if runtime == contract.Runtime.DOCKER and not build_row.image:
        raise Conflict(
            f"build {build} has no Docker image; rebuild with --builder docker or deploy with --runtime local",
            field="runtime",
        )
    current = {v["name"]: v for v in json.loads(deployment.variations_json or "[]")}
    previous = current.pop(variation, None) or {}
    if weight is None:
        weight = previous["weight"] if previous and not previous.get("shadow") else 100
    if replicas is None:
        replicas = previous.get("replicas", 1)
    variations = list(current.values())
    variations.append(
        {
            "name": variation,
            "build_id": build_row.id,
            "artifact_digest": build_row.artifact_digest,
            "image": build_row.image,
            "weight": 0 if shadow else weight,
            "shadow": shadow,
            "replicas": replicas,
        }
    )
    if len(variations) > contract.MAX_VARIATIONS:
        raise Conflict(f"a deployment has at most {contract.MAX_VARIATIONS} variations", field="variation")
    if not any(not v["shadow"] and v["weight"] > 0 for v in variations):
        field = "shadow" if shadow else "weight"
        raise InvalidInput("at least one variation must be live (not --shadow) with a weight above 0", field=field)
    deployment.variations_json = json.dumps(sorted(variations, key=lambda v: v["name"]))
    deployment.runtime = runtime
    if logging_enabled is not None:
        deployment.logging = logging_enabled
    if timeout_ms is not None:
        deployment.timeout_ms = timeout_ms
    elif created:
        deployment.timeout_ms = DEFAULT_TIMEOUT_MS
    if batch is not None:
        deployment.batch_json = json.dumps({"batch_rows": DEFAULT_BATCH_ROWS, **batch})
    if streaming is not None:
        deployment.streaming_json = json.dumps(streaming)
    session.add(deployment)
    session.flush()
    _send(session, deployment, model_row, agent=agent, action="deploy", actor=actor, ttl=command_ttl_seconds)
    return deployment, created


def apply_spec(deployment: Deployment, model: RegisteredModel) -> contract.ApplySpec:
    """The whole desired state, as the agent receives it in `deployment.apply`."""
    return {
        "deployment_id": deployment.id,
        "name": deployment.name,
        "model": model.name,
        "model_id": model.id,
        "project_id": deployment.project_id,
        "kind": deployment.kind,
        "runtime": deployment.runtime,
        "revision": deployment.revision,
        "logging": deployment.logging,
        "timeout_ms": deployment.timeout_ms,
        "variations": json.loads(deployment.variations_json or "[]"),
        "batch": json.loads(deployment.batch_json) if deployment.batch_json else None,
        "streaming": json.loads(deployment.streaming_json) if deployment.streaming_json else None,
    }


def _send(
    session: Session,
    deployment: Deployment,
    model: RegisteredModel,
    *,
    agent: Agent,
    action: str,
    actor: str,
    ttl: int,
) -> None:
    """Bump the revision and queue the command that carries it, with its history row and audit entry."""
    deployment.revision += 1
    deployment.updated_at = utcnow()
    if deployment.desired == "stopped":
        spec: dict[str, Any] = {"deployment_id": deployment.id}
        type_ = contract.DELETE_COMMAND
    else:
        spec = dict(apply_spec(deployment, model))
        problems = contract.check_apply_spec(spec)
        if problems:  # a bug here, not the caller's: validate_request should have caught it
            raise InvalidInput("; ".join(problems), field="spec")
        type_ = contract.APPLY_COMMAND
    ttl = max(ttl, MIN_COMMAND_TTL_SECONDS)
    command = create_command(session, agent=agent, type_=type_, spec=spec, actor=actor, ttl_seconds=ttl, internal=True)
    session.add(deployment)
    session.add(
        DeploymentRevision(
            deployment_id=deployment.id,
            revision=deployment.revision,
            tenant_id=deployment.tenant_id,
            action=action,
            spec_json=json.dumps(spec, sort_keys=True),
            command_id=command.id,
            created_by=actor,
        )
    )
    audit.record(
        session,
        tenant_id=deployment.tenant_id,
        actor=actor,
        action=f"deployment.{action}",
        target_type="deployment",
        target_id=deployment.id,
        details={"revision": deployment.revision, "model": model.name, "kind": deployment.kind},
    )


def undeploy(
    session: Session,
    *,
    tenant_id: str,
    deployment_id: str,
    actor: str,
    command_ttl_seconds: int,
    variation: str | None = None,
) -> Deployment:
    """Remove one variation (the rest keep serving), or stop the whole deployment. Idempotent."""
    deployment = get_deployment(session, tenant_id=tenant_id, deployment=deployment_id)
    model = session.get(RegisteredModel, deployment.model_id)
    agent = session.get(Agent, deployment.agent_id)
    assert model is not None and agent is not None
    if deployment.desired == "stopped":
        return deployment
    if variation is None:
        deployment.desired = "stopped"
        if agent.revoked_at is not None:  # nobody left to tell; it is stopped as far as we can know
            deployment.state = contract.DeploymentState.STOPPED.value
            deployment.stopped_at = utcnow()
            session.add(deployment)
            return deployment
        _send(session, deployment, model, agent=agent, action="undeploy", actor=actor, ttl=command_ttl_seconds)
        return deployment
    variations = json.loads(deployment.variations_json or "[]")
    remaining = [v for v in variations if v["name"] != variation]
    if len(remaining) == len(variations):
        known = ", ".join(v["name"] for v in variations)
        raise NotFound(f"deployment {deployment.id} has no variation {variation!r} (it has {known})", field="variation")
    if not any(not v["shadow"] and v["weight"] > 0 for v in remaining):
        raise Conflict(
            f"removing {variation!r} would leave no live variation; undeploy the whole deployment instead",
            field="variation",
        )
    deployment.variations_json = json.dumps(remaining)
    _send(session, deployment, model, agent=agent, action="undeploy-variation", actor=actor, ttl=command_ttl_seconds)
    return deployment


def get_deployment(session: Session, *, tenant_id: str, deployment: str) -> Deployment:
    """By id, or by name (the newest deployment of that name)."""
    row = session.get(Deployment, deployment)
    if row is None or row.tenant_id != tenant_id:
        row = session.exec(
            select(Deployment)
            .where(col(Deployment.tenant_id) == tenant_id)
            .where(col(Deployment.name) == deployment)
            .order_by(col(Deployment.created_at).desc())
        ).first()
    if row is None:
        raise NotFound(f"deployment {deployment!r} not found", field="deployment_id")
    return row


def list_deployments(
    session: Session,
    *,
    tenant_id: str,
    model: str | None = None,
    kind: str | None = None,
    include_stopped: bool = False,
) -> list[Deployment]:
    query = select(Deployment).where(col(Deployment.tenant_id) == tenant_id)
    if model:
        query = query.where(col(Deployment.model_id) == get_model(session, tenant_id=tenant_id, model=model).id)
    if kind:
        if kind not in {k.value for k in contract.DeploymentKind}:
            raise InvalidInput(f"kind must be one of {', '.join(contract.DeploymentKind)}", field="kind")
        query = query.where(col(Deployment.kind) == kind)
    if not include_stopped:
        query = query.where(col(Deployment.state) != contract.DeploymentState.STOPPED.value)
    return list(session.exec(query.order_by(col(Deployment.created_at).desc())))


def revisions(session: Session, deployment: Deployment) -> list[DeploymentRevision]:
    return list(
        session.exec(
            select(DeploymentRevision)
            .where(col(DeploymentRevision.deployment_id) == deployment.id)
            .order_by(col(DeploymentRevision.revision))
        )
    )


def fail_refused_apply(session: Session, *, agent_id: str, spec: dict[str, Any], error: str) -> None:
    """The agent refused a `deployment.apply` (acked as failed): the deployment shows why."""
    deployment = session.get(Deployment, str(spec.get("deployment_id", "")))
    if deployment is None or deployment.agent_id != agent_id or spec.get("revision") != deployment.revision:
        return  # an older revision's refusal says nothing about the current one
    deployment.state = contract.DeploymentState.FAILED.value
    deployment.message = f"the agent refused revision {deployment.revision}: {error or 'no reason given'}"[:600]
    deployment.reported_at = utcnow()
    session.add(deployment)
