"""Enrolled data-plane agents: listing, details, their events, and revocation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlmodel import col, select

from control_plane.api.deps import AdminPrincipal, CurrentPrincipal, SessionDep, SettingsDep
from control_plane.api.schemas import AgentPublic, EventPublic
from control_plane.models import Agent, AgentEvent
from control_plane.services import agents

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get("", response_model=list[AgentPublic])
def list_agents(principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep) -> list[AgentPublic]:
    rows = session.exec(
        select(Agent).where(col(Agent.tenant_id) == principal.tenant_id).order_by(col(Agent.created_at), col(Agent.id))
    )
    return [AgentPublic.from_row(a, offline_after_seconds=settings.offline_after_seconds) for a in rows]


@router.get("/{agent_id}", response_model=AgentPublic)
def get_agent(agent_id: str, principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep) -> AgentPublic:
    agent = agents.get_agent(session, tenant_id=principal.tenant_id, agent_id=agent_id)
    return AgentPublic.from_row(agent, offline_after_seconds=settings.offline_after_seconds)


@router.post("/{agent_id}/revoke", response_model=AgentPublic)
def revoke_agent(agent_id: str, principal: AdminPrincipal, session: SessionDep, settings: SettingsDep) -> AgentPublic:
    agent = agents.revoke_agent(session, tenant_id=principal.tenant_id, agent_id=agent_id, actor=principal.actor)
    session.commit()
    return AgentPublic.from_row(agent, offline_after_seconds=settings.offline_after_seconds)


@router.get("/{agent_id}/events", response_model=list[EventPublic])
def list_agent_events(
    agent_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventPublic]:
    agent = agents.get_agent(session, tenant_id=principal.tenant_id, agent_id=agent_id)
    rows = session.exec(
        select(AgentEvent)
        .where(col(AgentEvent.agent_id) == agent.id)
        .where(col(AgentEvent.tenant_id) == principal.tenant_id)
        .order_by(col(AgentEvent.seq).desc())
        .limit(limit)
    )
    return [EventPublic.from_row(e) for e in rows]
