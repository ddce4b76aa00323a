"""Agent identity, certificates, liveness and events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from control_plane.models import Agent, AgentCertificate, AgentEvent, utcnow
from control_plane.pki import CertificateAuthority, SignedCertificate
from control_plane.services import audit
from shared.errors import NotFound, PermissionDenied
from shared.identity import AgentIdentity

MAX_EVENT_PAYLOAD = 64 * 1024


def issue_certificate(
    session: Session,
    ca: CertificateAuthority,
    agent: Agent,
    csr_pem: bytes,
    *,
    lifetime_seconds: int,
    backdate_seconds: int,
) -> SignedCertificate:
    """Sign `csr_pem` for `agent` (identity from the row) and record it by serial."""
    signed = ca.sign_agent_csr(
        csr_pem,
        AgentIdentity(tenant_id=agent.tenant_id, agent_id=agent.id),
        lifetime=timedelta(seconds=lifetime_seconds),
        backdate=timedelta(seconds=backdate_seconds),
    )
    session.add(
        AgentCertificate(
            serial=signed.serial,
            agent_id=agent.id,
            tenant_id=agent.tenant_id,
            not_before=signed.not_before,
            not_after=signed.not_after,
        )
    )
    agent.cert_serial = signed.serial
    agent.cert_expires_at = signed.not_after
    session.add(agent)
    return signed


def authorize_peer(session: Session, identity: AgentIdentity, serial: str) -> Agent:
    """Check, at every stream open, that the certificate and its agent are still trusted."""
    cert = session.get(AgentCertificate, serial)
    if cert is None or cert.agent_id != identity.agent_id or cert.tenant_id != identity.tenant_id:
        raise PermissionDenied("certificate was not issued by this control plane for this agent")
    if cert.revoked_at is not None:
        raise PermissionDenied(f"certificate {serial} has been revoked")
    agent = session.get(Agent, identity.agent_id)
    if agent is None or agent.tenant_id != identity.tenant_id:
        raise PermissionDenied("agent is not registered")
    if agent.revoked_at is not None:
        raise PermissionDenied(f"agent {agent.id} has been revoked")
    return agent


def revoke_superseded(session: Session, *, agent_id: str, serial: str) -> int:
    """Once an agent opens a stream with a renewed certificate, its older ones are revoked.

    Not at renewal time: until the agent has stored and used the new certificate, the old one
    is its only way back in.
    """
    current = session.get(AgentCertificate, serial)
    if current is None:
        return 0
    result = session.execute(
        update(AgentCertificate)
        .where(col(AgentCertificate.agent_id) == agent_id)
        .where(col(AgentCertificate.serial) != serial)
        .where(col(AgentCertificate.created_at) < current.created_at)
        .where(col(AgentCertificate.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def get_agent(session: Session, *, tenant_id: str, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None or agent.tenant_id != tenant_id:
        raise NotFound(f"agent {agent_id} not found", field="agent_id")
    return agent


def revoke_agent(session: Session, *, tenant_id: str, agent_id: str, actor: str) -> Agent:
    """Revoke the agent and every certificate it holds; live streams are cut by the gateway."""
    agent = get_agent(session, tenant_id=tenant_id, agent_id=agent_id)
    now = utcnow()
    if agent.revoked_at is None:
        agent.revoked_at = now
        agent.status = "revoked"
        session.add(agent)
    session.execute(
        update(AgentCertificate)
        .where(col(AgentCertificate.agent_id) == agent.id)
        .where(col(AgentCertificate.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    audit.record(
        session, tenant_id=tenant_id, actor=actor, action="agent.revoke", target_type="agent", target_id=agent.id
    )
    return agent


def revoked_among(session: Session, agent_serials: dict[str, str]) -> set[str]:
    """Which of these connected agents (id -> cert serial) must be cut now."""
    if not agent_serials:
        return set()
    ids = list(agent_serials)
    cut: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for agent_id in session.exec(
            select(Agent.id).where(col(Agent.id).in_(chunk)).where(col(Agent.revoked_at).is_not(None))
        ):
            cut.add(agent_id)
        serials = [agent_serials[a] for a in chunk]
        for _serial, agent_id in session.exec(
            select(AgentCertificate.serial, AgentCertificate.agent_id)
            .where(col(AgentCertificate.serial).in_(serials))
            .where(col(AgentCertificate.revoked_at).is_not(None))
        ):
            cut.add(agent_id)
    return cut


def agent_status(agent: Agent, *, offline_after_seconds: float, now: datetime | None = None) -> str:
    if agent.revoked_at is not None:
        return "revoked"
    now = now or utcnow()
    if agent.connected and agent.last_seen_at and (now - agent.last_seen_at).total_seconds() <= offline_after_seconds:
        return "online"
    return "offline"


def mark_connected(
    session: Session, agent: Agent, *, version: str, capabilities: list[str], data_plane_url: str, hostname: str
) -> None:
    now = utcnow()
    agent.version = version[:40]
    agent.capabilities_json = json.dumps(sorted(set(capabilities))[:64])
    agent.data_plane_url = data_plane_url[:500]
    if hostname:
        agent.hostname = hostname[:255]
    agent.connected = True
    agent.status = "online"
    agent.connected_at = now
    agent.last_seen_at = now
    session.add(agent)


def mark_disconnected(session: Session, agent_id: str) -> None:
    session.execute(
        update(Agent).where(col(Agent.id) == agent_id).values(connected=False, status="offline", last_seen_at=utcnow())
    )


def record_heartbeats(session: Session, seen: dict[str, datetime]) -> None:
    """Update last_seen_at for many agents with one executemany statement."""
    if not seen:
        return
    table = Agent.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id == bindparam("agent_id"))
        .where(table.c.revoked_at.is_(None))
        .values(last_seen_at=bindparam("seen_at"), status="online", connected=True)
    )
    session.connection().execute(statement, [{"agent_id": a, "seen_at": t} for a, t in seen.items()])


def mark_offline_stale(session: Session, *, offline_after_seconds: float) -> list[str]:
    """Agents that missed their heartbeats go offline. Returns their ids.

    One conditional UPDATE ... RETURNING, so two schedulers never both report the same
    agent, and a heartbeat that lands first keeps its agent online.
    """
    cutoff = utcnow() - timedelta(seconds=offline_after_seconds)
    result = session.execute(
        update(Agent)
        .where(col(Agent.status) == "online")
        .where((col(Agent.last_seen_at).is_(None)) | (col(Agent.last_seen_at) < cutoff))
        .values(status="offline", connected=False)
        .returning(col(Agent.id))
    )
    return [row[0] for row in result]


def apply_event(
    session: Session, *, agent: Agent, seq: int, type_: str, payload_json: str, occurred_at: datetime
) -> bool:
    """Apply event `seq` once. Returns False when it was already applied (a redelivery)."""
    if seq <= 0:
        raise ValueError("event seq must be positive")
    existing = session.exec(
        select(AgentEvent.id).where(col(AgentEvent.agent_id) == agent.id).where(col(AgentEvent.seq) == seq)
    ).first()
    if existing is not None:
        return False
    session.add(
        AgentEvent(
            tenant_id=agent.tenant_id,
            agent_id=agent.id,
            seq=seq,
            type=type_[:80],
            payload_json=payload_json,
            occurred_at=occurred_at,
        )
    )
    session.execute(
        update(Agent).where(col(Agent.id) == agent.id).where(col(Agent.last_event_seq) < seq).values(last_event_seq=seq)
    )
    if type_.startswith("build."):
        from control_plane.services.builds import apply_build_event

        try:
            payload = json.loads(payload_json or "{}")
        except ValueError:
            payload = {}
        if isinstance(payload, dict):
            apply_build_event(session, agent=agent, type_=type_, payload=payload)
    elif type_.startswith("features."):
        from control_plane.services.feature_events import apply_feature_event

        try:
            payload = json.loads(payload_json or "{}")
        except ValueError:
            payload = {}
        if isinstance(payload, dict):
            apply_feature_event(session, agent=agent, type_=type_, payload=payload)
    elif type_ in ("deployment.status", "serving.metrics"):
        from control_plane.services.deployment_events import apply_serving_event

        try:
            payload = json.loads(payload_json or "{}")
        except ValueError:
            payload = {}
        if isinstance(payload, dict):
            apply_serving_event(session, agent=agent, type_=type_, payload=payload)
    return True
