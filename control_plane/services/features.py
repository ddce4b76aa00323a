"""Feature sets: register versioned definitions, send them to the agent, materialize, freshness.

Only definitions (names, types, SQL text, schedules) and counts live here. The agent that holds
a project's feature data gets every registered definition in a `features.apply` command and
reports back with `features.materialization` / `features.freshness` events.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from control_plane.models import Agent, FeatureMaterialization, FeatureSetDefinition, Project, utcnow
from control_plane.models.common import iso
from control_plane.services import audit
from control_plane.services.commands import create_command
from control_plane.services.feature_compat import incompatibilities, parse_definition
from control_plane.services.projects import get_project
from shared import features as contract
from shared.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger("mallard.features")
Status = contract.MaterializationStatus


# ---- registering definitions ------------------------------------------------------------------


def _check_definition(index: int, item: dict[str, Any]) -> tuple[str, int, str, dict[str, Any], str]:
    """(name, version, kind, definition, fingerprint) of one apply entry, or InvalidInput."""
    where = f"definitions[{index}]"
    name, version, kind, definition = item.get("name"), item.get("version"), item.get("kind"), item.get("definition")
    if not isinstance(name, str) or not contract.FEATURE_SET_NAME.match(name):
        raise InvalidInput(
            f"{where}.name {name!r} is not valid: use 1-63 letters, digits and '_', not starting with a digit",
            field="definitions",
        )
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= 100_000:
        raise InvalidInput(f"{where}.version must be a whole number from 1 ({name})", field="definitions")
    if kind not in {k.value for k in contract.DefinitionKind}:
        known = ", ".join(k.value for k in contract.DefinitionKind)
        raise InvalidInput(f"{where}.kind must be one of {known}, got {kind!r} ({name})", field="definitions")
    if not isinstance(definition, dict) or not definition:
        raise InvalidInput(f"{where}.definition must be a non-empty JSON object ({name})", field="definitions")
    if len(contract.canonical_json(definition)) > contract.MAX_DEFINITION_BYTES:
        raise InvalidInput(
            f"{where}.definition of {name} is larger than {contract.MAX_DEFINITION_BYTES} bytes", field="definitions"
        )
    for key, expected in (("name", name), ("version", version), ("kind", kind)):
        if definition.get(key) != expected:
            raise InvalidInput(
                f"{where}: definition.{key} is {definition.get(key)!r} but the entry says {expected!r}",
                field="definitions",
            )
    schedule = definition.get("schedule")
    if schedule is not None and (not isinstance(schedule, str) or len(schedule) > 100):
        raise InvalidInput(f"{where}.definition.schedule must be text of up to 100 characters", field="definitions")
    parsed = parse_definition(definition, where=f"{where} ({name})")
    return name, version, kind, definition, parsed.fingerprint


def _resolve_agent(session: Session, *, tenant_id: str, project: Project, agent_id: str | None) -> Agent:
    """The agent named, else the one already holding this project's feature sets, else the only one."""
    if agent_id:
        agent = session.get(Agent, agent_id)
        if agent is None or agent.tenant_id != tenant_id:
            raise NotFound(f"agent {agent_id} not found", field="agent_id")
    else:
        current = session.exec(
            select(FeatureSetDefinition.agent_id)
            .where(col(FeatureSetDefinition.project_id) == project.id)
            .order_by(col(FeatureSetDefinition.updated_at).desc())
        ).first()
        if current is not None:
            agent = session.get(Agent, current)
            assert agent is not None
        else:
            candidates = list(
                session.exec(
                    select(Agent).where(col(Agent.tenant_id) == tenant_id).where(col(Agent.revoked_at).is_(None))
                )
            )
            if not candidates:
                raise Conflict(
                    "no agent is enrolled in this tenant; enroll one (mallard agents token create) first",
                    field="agent_id",
                )
            if len(candidates) > 1:
                raise InvalidInput(
                    f"this tenant has {len(candidates)} agents; say which one holds project "
                    f"{project.name!r}'s feature data with agent_id",
                    field="agent_id",
                )
            agent = candidates[0]
    if agent.revoked_at is not None:
        raise Conflict(f"agent {agent.id} has been revoked", field="agent_id")
    return agent


def apply_definitions(
    session: Session,
    *,
    tenant_id: str,
    project: str,
    definitions: list[dict[str, Any]],
    agent_id: str | None,
    actor: str,
    command_ttl_seconds: int,
) -> tuple[list[tuple[FeatureSetDefinition, str]], str]:
    """Register (or confirm) each definition, then send them all to the agent in one command.

    All or nothing: a bad or incompatible definition raises before anything is flushed.
    Returns ([(row, "created" | "updated" | "unchanged")], command id).
    """
    if not definitions:
        raise InvalidInput("definitions must list at least one feature set", field="definitions")
    if len(definitions) > contract.MAX_DEFINITIONS_PER_APPLY:
        raise InvalidInput(f"definitions: at most {contract.MAX_DEFINITIONS_PER_APPLY} per apply", field="definitions")
    project_row = get_project(session, tenant_id=tenant_id, id_or_name=project)
    checked = [_check_definition(i, item) for i, item in enumerate(definitions)]
    seen: set[tuple[str, int]] = set()
    for name, version, *_ in checked:
        if (name, version) in seen:
            raise InvalidInput(
                f"definitions: feature set {name} version {version} is listed twice", field="definitions"
            )
        seen.add((name, version))
    agent = _resolve_agent(session, tenant_id=tenant_id, project=project_row, agent_id=agent_id)
    now = utcnow()
    results: list[tuple[FeatureSetDefinition, str]] = []
    for name, version, kind, definition, fingerprint in checked:
        text = contract.canonical_json(definition)
        row = session.exec(
            select(FeatureSetDefinition)
            .where(col(FeatureSetDefinition.project_id) == project_row.id)
            .where(col(FeatureSetDefinition.name) == name)
            .where(col(FeatureSetDefinition.version) == version)
        ).first()
        if row is not None and row.definition_json == text and row.agent_id == agent.id:
            results.append((row, "unchanged"))
            continue
        if row is not None:
            if row.kind != kind:
                raise Conflict(
                    f"feature set {name} version {version} is a {row.kind}, not a {kind}; "
                    f"register the change as version {_next_version(session, row)}",
                    field="definitions",
                )
            problems = incompatibilities(json.loads(row.definition_json), definition)
            if problems:
                raise Conflict(
                    f"feature set {name} version {version} is already registered and this change is "
                    f"incompatible ({'; '.join(problems)}); bump the version to "
                    f"{_next_version(session, row)} so training data of version {version} stays readable",
                    field="definitions",
                )
            change = "updated"
        else:
            row = FeatureSetDefinition(
                tenant_id=tenant_id,
                project_id=project_row.id,
                agent_id=agent.id,
                name=name,
                version=version,
                kind=kind,
                definition_json="",
                fingerprint="",
                created_by=actor,
                created_at=now,
            )
            change = "created"
        row.definition_json = text
        row.fingerprint = fingerprint
        row.agent_id = agent.id
        row.schedule = definition.get("schedule") if kind == contract.DefinitionKind.BATCH else None
        row.online = bool(definition.get("online", True))
        row.updated_at = now
        session.add(row)
        results.append((row, change))
        audit.record(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action=f"feature_set.{'create' if change == 'created' else 'update'}",
            target_type="feature_set",
            target_id=row.id,
            details={"name": name, "version": version, "project_id": project_row.id, "fingerprint": fingerprint},
        )
    try:
        session.flush()  # the unique (tenant, project, name, version) decides between concurrent applies
    except IntegrityError as exc:
        raise Conflict("another apply registered the same feature set version at the same time; retry") from exc
    spec: contract.ApplySpec = {
        "tenant_id": tenant_id,
        "definitions": [definition_spec(row, project_row.name) for row, _ in results],
    }
    command = create_command(
        session,
        agent=agent,
        type_=contract.APPLY_COMMAND,
        spec=dict(spec),
        actor=actor,
        ttl_seconds=command_ttl_seconds,
        internal=True,
    )
    for row, change in results:
        # Everything is sent again; what the agent had already accepted stays accepted.
        if change != "unchanged" or row.agent_status != "applied":
            row.agent_status, row.agent_error = "pending", None
        row.apply_command_id = command.id
        session.add(row)
    return results, command.id


def record_apply_ack(session: Session, *, command_id: str, ok: bool, error: str) -> None:
    """The agent answered a features.apply: its definitions are applied, or refused with the reason."""
    rows = session.exec(
        select(FeatureSetDefinition).where(col(FeatureSetDefinition.apply_command_id) == command_id)
    ).all()
    for row in rows:
        if not ok and row.agent_status == "applied":
            continue  # sent again unchanged: the agent still holds it as before
        row.agent_status = "applied" if ok else "refused"
        row.agent_error = None if ok else contract.summarize_error(error or "the agent refused the definitions")
        session.add(row)


def _next_version(session: Session, row: FeatureSetDefinition) -> int:
    versions = session.exec(
        select(FeatureSetDefinition.version)
        .where(col(FeatureSetDefinition.project_id) == row.project_id)
        .where(col(FeatureSetDefinition.name) == row.name)
    ).all()
    return max(versions, default=row.version) + 1


def definition_spec(row: FeatureSetDefinition, project_name: str) -> contract.DefinitionSpec:
    return {
        "project": project_name,
        "name": row.name,
        "version": row.version,
        "kind": row.kind,
        "fingerprint": row.fingerprint,
        "definition": json.loads(row.definition_json),
    }


# ---- reading ------------------------------------------------------------------------------------


def list_feature_sets(session: Session, *, tenant_id: str, project: str | None = None) -> list[FeatureSetDefinition]:
    """Every registered version, by project, name and version."""
    query = select(FeatureSetDefinition).where(col(FeatureSetDefinition.tenant_id) == tenant_id)
    if project:
        query = query.where(
            col(FeatureSetDefinition.project_id) == get_project(session, tenant_id=tenant_id, id_or_name=project).id
        )
    return list(
        session.exec(
            query.order_by(
                col(FeatureSetDefinition.project_id), col(FeatureSetDefinition.name), col(FeatureSetDefinition.version)
            )
        )
    )


def feature_set_versions(
    session: Session, *, tenant_id: str, feature_set: str, project: str | None = None
) -> list[FeatureSetDefinition]:
    """All versions of one feature set (named by id or by name), oldest first."""
    row = session.get(FeatureSetDefinition, feature_set)
    if row is not None and row.tenant_id == tenant_id:
        query = select(FeatureSetDefinition).where(col(FeatureSetDefinition.project_id) == row.project_id)
        name = row.name
    else:
        query = select(FeatureSetDefinition).where(col(FeatureSetDefinition.tenant_id) == tenant_id)
        if project:
            project_id = get_project(session, tenant_id=tenant_id, id_or_name=project).id
            query = query.where(col(FeatureSetDefinition.project_id) == project_id)
        name = feature_set
    rows = list(
        session.exec(query.where(col(FeatureSetDefinition.name) == name).order_by(col(FeatureSetDefinition.version)))
    )
    if not rows:
        raise NotFound(
            f"feature set {feature_set!r} not found; register it with `mallard features apply`", field="feature_set"
        )
    if len({r.project_id for r in rows}) > 1:
        raise InvalidInput(f"feature set {feature_set!r} exists in several projects; name the project", field="project")
    return rows


def get_feature_set(
    session: Session, *, tenant_id: str, feature_set: str, project: str | None = None, version: int | None = None
) -> FeatureSetDefinition:
    """One version (the latest unless `version` is given) of a feature set named by id or name."""
    direct = session.get(FeatureSetDefinition, feature_set)
    if direct is not None and direct.tenant_id == tenant_id and version is None:
        return direct
    rows = feature_set_versions(session, tenant_id=tenant_id, feature_set=feature_set, project=project)
    if version is None:
        return rows[-1]
    for row in rows:
        if row.version == version:
            return row
    known = ", ".join(str(r.version) for r in rows)
    raise NotFound(f"feature set {rows[0].name} has no version {version} (registered: {known})", field="version")


def feature_set_view(row: FeatureSetDefinition, *, project_name: str | None = None) -> dict[str, Any]:
    definition = json.loads(row.definition_json or "{}")
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "kind": row.kind,
        "project_id": row.project_id,
        "project": project_name,
        "agent_id": row.agent_id,
        "fingerprint": row.fingerprint,
        "schedule": row.schedule,
        "online": row.online,
        "agent_status": row.agent_status,
        "agent_error": row.agent_error,
        "definition": definition,
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "freshness": {
            "last_materialized_at": iso(row.last_materialized_at),
            "offline_rows": row.offline_rows,
            "online_keys": row.online_keys,
            "reported_at": iso(row.freshness_reported_at),
        },
    }


# ---- materialization ----------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def materialize(
    session: Session,
    *,
    tenant_id: str,
    feature_set: str,
    project: str | None,
    version: int | None,
    start: datetime | None,
    end: datetime | None,
    actor: str,
    command_ttl_seconds: int,
) -> FeatureMaterialization:
    """Queue a materialization on the feature set's agent: incremental, or a backfill of [start, end)."""
    row = get_feature_set(session, tenant_id=tenant_id, feature_set=feature_set, project=project, version=version)
    start, end = _utc(start), _utc(end)
    if end is not None and start is None:
        raise InvalidInput("end needs a start: a backfill is the range [start, end)", field="start")
    if start is not None and end is not None and start >= end:
        raise InvalidInput("start must be before end", field="end")
    if row.kind == contract.DefinitionKind.STREAM:
        raise Conflict(
            f"{row.name} is a stream feature set: the agent keeps it up to date from its stream continuously",
            field="feature_set",
        )
    agent = session.get(Agent, row.agent_id)
    if agent is None or agent.revoked_at is not None:
        raise Conflict(f"the agent holding {row.name} ({row.agent_id}) has been revoked", field="feature_set")
    project_row = session.get(Project, row.project_id)
    assert project_row is not None
    job = FeatureMaterialization(
        tenant_id=tenant_id,
        feature_set_id=row.id,
        agent_id=agent.id,
        range_start=start,
        range_end=end,
        created_by=actor,
    )
    session.add(job)
    session.flush()
    spec: contract.MaterializeSpec = {
        "job_id": job.id,
        "tenant_id": tenant_id,
        "project": project_row.name,
        "name": row.name,
        "version": row.version,
        "start": iso(start),
        "end": iso(end),
    }
    command = create_command(
        session,
        agent=agent,
        type_=contract.MATERIALIZE_COMMAND,
        spec=dict(spec),
        actor=actor,
        ttl_seconds=command_ttl_seconds,
        internal=True,
    )
    job.command_id = command.id
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="feature_set.materialize",
        target_type="feature_materialization",
        target_id=job.id,
        details={"feature_set_id": row.id, "start": iso(start), "end": iso(end)},
    )
    return job


def get_materialization(session: Session, *, tenant_id: str, materialization_id: str) -> FeatureMaterialization:
    job = session.get(FeatureMaterialization, materialization_id)
    if job is None or job.tenant_id != tenant_id:
        raise NotFound(f"materialization {materialization_id} not found", field="materialization_id")
    return job


def list_materializations(session: Session, *, feature_set_id: str, limit: int = 20) -> list[FeatureMaterialization]:
    return list(
        session.exec(
            select(FeatureMaterialization)
            .where(col(FeatureMaterialization.feature_set_id) == feature_set_id)
            .order_by(col(FeatureMaterialization.created_at).desc())
            .limit(limit)
        )
    )


def materialization_view(job: FeatureMaterialization) -> dict[str, Any]:
    return {
        "id": job.id,
        "feature_set_id": job.feature_set_id,
        "agent_id": job.agent_id,
        "status": job.status,
        "start": iso(job.range_start),
        "end": iso(job.range_end),
        "rows_done": job.rows_done,
        "rows_total": job.rows_total,
        "error_summary": job.error_summary,
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
    }


def fail_refused_materialization(session: Session, *, agent_id: str, job_id: str, error: str) -> None:
    """The agent refused the `features.materialize` command: the job fails with its reason."""
    job = session.get(FeatureMaterialization, job_id)
    if job is None or job.agent_id != agent_id or Status(job.status).final:
        return
    job.status = Status.FAILED
    job.error_summary = contract.summarize_error(error or "the agent refused the materialization")
    job.finished_at = utcnow()
    session.add(job)
