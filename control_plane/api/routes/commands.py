"""Commands for agents: create (optionally waiting for the result), read, and `describe`.

The waiting routes are async so a caller waiting up to a minute does not hold a threadpool
worker; each database step still runs in the threadpool, with a fresh session per poll so
every poll sees what the gateway committed since.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from control_plane.api.deps import CurrentPrincipal, Principal, SessionDep, SettingsDep
from control_plane.api.schemas import CommandPublic, RequestBody
from control_plane.db import session_scope
from control_plane.models import AgentCommand
from control_plane.services import agents, commands
from control_plane.settings import Settings

router = APIRouter(tags=["commands"])

MAX_WAIT_SECONDS = 60


class CommandCreate(RequestBody):
    type: str = Field(max_length=40, description="One of: " + ", ".join(sorted(commands.COMMAND_TYPES)))
    spec: dict[str, Any] = Field(default_factory=dict)
    wait_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Wait up to this long for the agent's result before answering.",
    )


def _create(
    session: Session, principal: Principal, agent_id: str, type_: str, spec: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    agent = agents.get_agent(session, tenant_id=principal.tenant_id, agent_id=agent_id)
    command = commands.create_command(
        session, agent=agent, type_=type_, spec=spec, actor=principal.actor, ttl_seconds=settings.command_ttl_seconds
    )
    session.commit()
    return commands.command_view(command)


def _load(database_url: str, tenant_id: str, command_id: str) -> dict[str, Any]:
    with session_scope(database_url) as session:
        return commands.command_view(commands.get_command(session, tenant_id=tenant_id, command_id=command_id))


async def _wait_until_final(
    request: Request, settings: Settings, tenant_id: str, view: dict[str, Any], seconds: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    interval = settings.command_poll_interval_ms / 1000
    while view["state"] not in commands.FINAL_STATES:
        remaining = deadline - loop.time()
        if remaining <= 0 or await request.is_disconnected():
            break
        await asyncio.sleep(min(interval, remaining))
        view = await run_in_threadpool(_load, settings.effective_database_url, tenant_id, view["id"])
    return view


@router.post("/agents/{agent_id}/commands", status_code=201, response_model=CommandPublic)
async def create_command(
    agent_id: str,
    body: CommandCreate,
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    view = await run_in_threadpool(_create, session, principal, agent_id, body.type, body.spec, settings)
    if body.wait_seconds > 0:
        view = await _wait_until_final(request, settings, principal.tenant_id, view, body.wait_seconds)
    return view


@router.post(
    "/agents/{agent_id}/describe",
    response_model=CommandPublic,
    tags=["agents"],
    responses={202: {"model": CommandPublic, "description": "The agent has not answered yet; poll the command."}},
)
async def describe_agent(
    agent_id: str,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 10,
) -> dict[str, Any]:
    view = await run_in_threadpool(_create, session, principal, agent_id, "describe", {}, settings)
    view = await _wait_until_final(request, settings, principal.tenant_id, view, timeout)
    response.status_code = 200 if view["state"] in commands.FINAL_STATES else 202
    return view


@router.get("/agents/{agent_id}/commands", response_model=list[CommandPublic])
def list_agent_commands(
    agent_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    agent = agents.get_agent(session, tenant_id=principal.tenant_id, agent_id=agent_id)
    rows = session.exec(
        select(AgentCommand)
        .where(col(AgentCommand.agent_id) == agent.id)
        .where(col(AgentCommand.tenant_id) == principal.tenant_id)
        .order_by(col(AgentCommand.created_at).desc(), col(AgentCommand.id))
        .limit(limit)
    )
    return [commands.command_view(c) for c in rows]


@router.get("/commands/{command_id}", response_model=CommandPublic)
def get_command(command_id: str, principal: CurrentPrincipal, session: SessionDep) -> dict[str, Any]:
    return commands.command_view(commands.get_command(session, tenant_id=principal.tenant_id, command_id=command_id))
