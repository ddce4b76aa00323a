"""Periodic control-plane housekeeping run by beat.

Every task takes no arguments, opens its own session on the configured database, commits
what it did and is safe to run again (at-least-once delivery with acks_late): a rerun finds
nothing left in the state it looks for. Transient database errors are retried with backoff.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.utils.log import get_task_logger
from sqlalchemy import delete, or_
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from control_plane.db import session_scope
from control_plane.models import Agent, JoinToken, utcnow
from control_plane.scheduler.broker import processed_dir, uses_embedded_broker
from control_plane.services import agents, audit, builds, commands
from control_plane.settings import get_settings

logger = get_task_logger(__name__)

ACTOR = "system:scheduler"
PURGE_BATCH_SIZE = 500
# Processed messages of the embedded broker are kept this long, for debugging, then deleted.
BROKER_FILE_RETENTION_SECONDS = 3600.0

TASK_OPTIONS: dict[str, Any] = {
    "acks_late": True,
    "ignore_result": True,
    # A locked SQLite file or a PostgreSQL failover/restart: try again shortly.
    "autoretry_for": (OperationalError,),
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="control_plane.scheduler.tasks.mark_offline_agents", **TASK_OPTIONS)
def mark_offline_agents() -> list[str]:
    """Agents whose heartbeats stopped go offline, with one audit row each."""
    settings = get_settings()
    with session_scope(settings.effective_database_url) as session:
        ids = agents.mark_offline_stale(session, offline_after_seconds=settings.offline_after_seconds)
        for agent_id, tenant_id, last_seen_at in _agent_rows(session, ids):
            audit.record(
                session,
                tenant_id=tenant_id,
                actor=ACTOR,
                action="agent.offline",
                target_type="agent",
                target_id=agent_id,
                details={"last_seen_at": last_seen_at, "offline_after_seconds": settings.offline_after_seconds},
            )
        session.commit()
    if ids:
        logger.info("marked %d agent(s) offline: %s", len(ids), ", ".join(ids))
    return ids


def _agent_rows(session: Session, ids: list[str]) -> list[tuple[str, str, Any]]:
    if not ids:
        return []
    rows = session.exec(select(Agent.id, Agent.tenant_id, Agent.last_seen_at).where(col(Agent.id).in_(ids)))
    return [(agent_id, tenant_id, last_seen_at) for agent_id, tenant_id, last_seen_at in rows]


@shared_task(name="control_plane.scheduler.tasks.expire_commands", **TASK_OPTIONS)
def expire_commands() -> list[str]:
    """Open commands past their deadline become `expired`."""
    settings = get_settings()
    with session_scope(settings.effective_database_url) as session:
        ids = commands.expire_commands(session)
        session.commit()
    if ids:
        logger.info("expired %d command(s): %s", len(ids), ", ".join(ids))
    return ids


@shared_task(name="control_plane.scheduler.tasks.fail_expired_build_leases", **TASK_OPTIONS)
def fail_expired_build_leases() -> list[str]:
    """Builds whose agent stopped reporting for `build_lease_seconds` are failed (audit-logged)."""
    settings = get_settings()
    with session_scope(settings.effective_database_url) as session:
        ids = builds.fail_expired_leases(session, lease_seconds=settings.build_lease_seconds)
        session.commit()
    if ids:
        logger.info("failed %d build(s) whose agent stopped reporting: %s", len(ids), ", ".join(ids))
    return ids


@shared_task(name="control_plane.scheduler.tasks.purge_join_tokens", **TASK_OPTIONS)
def purge_join_tokens() -> int:
    """Delete join tokens that stopped being usable more than the retention period ago.

    A token stops being usable when it expires, is redeemed or is revoked. Deletion runs in
    committed batches, each with one audit row per tenant listing the tokens it removed.
    """
    settings = get_settings()
    retention = settings.join_token_retention_seconds
    cutoff = utcnow() - timedelta(seconds=retention)
    finished = or_(
        col(JoinToken.expires_at) < cutoff, col(JoinToken.redeemed_at) < cutoff, col(JoinToken.revoked_at) < cutoff
    )
    total = 0
    with session_scope(settings.effective_database_url) as session:
        while True:
            batch = list(session.exec(select(JoinToken.id).where(finished).limit(PURGE_BATCH_SIZE)))
            if not batch:
                break
            # RETURNING reports only rows this transaction deleted, so a concurrent or repeated
            # run never audits the same token twice.
            deleted = session.execute(
                delete(JoinToken)
                .where(col(JoinToken.id).in_(batch))
                .where(finished)
                .returning(col(JoinToken.id), col(JoinToken.tenant_id))
            ).all()
            by_tenant: dict[str, list[str]] = defaultdict(list)
            for token_id, tenant_id in deleted:
                by_tenant[tenant_id].append(token_id)
            for tenant_id, token_ids in by_tenant.items():
                audit.record(
                    session,
                    tenant_id=tenant_id,
                    actor=ACTOR,
                    action="join_token.purge",
                    target_type="tenant",
                    target_id=tenant_id,
                    details={
                        "join_token_ids": sorted(token_ids),
                        "count": len(token_ids),
                        "retention_seconds": retention,
                    },
                )
            session.commit()
            total += len(deleted)
            if len(batch) < PURGE_BATCH_SIZE:
                break
    if total:
        logger.info("purged %d join token(s) finished more than %ds ago", total, retention)
    return total


@shared_task(name="control_plane.scheduler.tasks.prune_broker_files", acks_late=True, ignore_result=True)
def prune_broker_files() -> int:
    """Delete old processed messages of the embedded (filesystem) broker; a no-op with Redis."""
    settings = get_settings()
    if not uses_embedded_broker(settings):
        return 0
    processed = processed_dir(settings)
    cutoff = time.time() - BROKER_FILE_RETENTION_SECONDS
    removed = 0
    for path in processed.glob("*.msg"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # another worker pruned it first
            continue
    if removed:
        logger.info("pruned %d processed broker message(s) from %s", removed, processed)
    return removed
