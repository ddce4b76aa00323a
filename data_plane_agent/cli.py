"""`mallard-agent`: run the data-plane agent."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

import typer

from data_plane_agent.daemon import run_agent
from data_plane_agent.link.enroll import EnrollmentError
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.settings import AgentSettings
from shared import __version__

app = typer.Typer(
    help="Mallard data-plane agent: runs inside your network and dials out to the control plane.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def run(
    control_plane: str = typer.Option(
        ..., envvar="MALLARD_AGENT_CONTROL_PLANE", help="HOST:PORT of the control plane's agent link (mTLS)."
    ),
    home: Path = typer.Option(
        Path.home() / ".mallard" / "agent",
        envvar="MALLARD_AGENT_HOME",
        help="Directory for the agent's key, certificate and state.",
    ),
    join_token: str = typer.Option(
        "", envvar="MALLARD_AGENT_JOIN_TOKEN", help="One-time join token (only needed for the first start)."
    ),
    enroll_address: str = typer.Option(
        "", envvar="MALLARD_AGENT_ENROLL_ADDRESS", help="HOST:PORT for enrollment (default: link port + 1)."
    ),
    ca_file: Path | None = typer.Option(
        None, envvar="MALLARD_AGENT_CA_FILE", help="CA bundle that signed the gateway's certificate."
    ),
    tenant: str = typer.Option("", envvar="MALLARD_AGENT_TENANT_ID", help="Refuse join tokens of any other tenant."),
    data_plane_host: str = typer.Option("127.0.0.1", envvar="MALLARD_AGENT_DATA_PLANE_HOST"),
    data_plane_port: int = typer.Option(8710, envvar="MALLARD_AGENT_DATA_PLANE_PORT"),
    data_plane_grpc_port: int = typer.Option(
        8711, envvar="MALLARD_AGENT_DATA_PLANE_GRPC_PORT", help="gRPC prediction API port (0: off)."
    ),
    log_level: str = typer.Option("INFO", envvar="MALLARD_AGENT_LOG_LEVEL"),
) -> None:
    """Enroll (first start only), connect, heartbeat, execute commands, serve the data-plane API."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = AgentSettings(
        home=home,
        control_plane=control_plane,
        join_token=join_token,
        enroll_address=enroll_address,
        ca_file=ca_file,
        tenant_id=tenant,
        data_plane_host=data_plane_host,
        data_plane_port=data_plane_port,
        data_plane_grpc_port=data_plane_grpc_port,
    )
    try:
        asyncio.run(run_agent(settings))
    except EnrollmentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def status(
    home: Path = typer.Option(Path.home() / ".mallard" / "agent", envvar="MALLARD_AGENT_HOME"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show this agent's identity, certificate expiry and unsent events (reads the home directory)."""
    agent_home = AgentHome(home)
    if not agent_home.enrolled:
        typer.echo(f"not enrolled (no identity in {home})", err=True)
        raise typer.Exit(1)
    from data_plane_agent.link.outbox import Outbox

    creds = agent_home.credentials()
    outbox = Outbox(agent_home.state_db)
    info = {
        "agent_id": agent_home.identity().agent_id,
        "tenant_id": agent_home.identity().tenant_id,
        "spiffe_id": agent_home.identity().spiffe_id,
        "certificate_not_after": creds.not_after.isoformat(),
        "unsent_events": outbox.pending_count(),
        "version": __version__,
    }
    outbox.close()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            typer.echo(f"{key:22} {value}")


@app.command()
def version() -> None:
    """Print the agent version."""
    typer.echo(f"mallard-agent {__version__}")


def main() -> None:  # pragma: no cover
    app(sys.argv[1:])
