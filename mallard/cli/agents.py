"""`mallard agents ...`: data-plane agents and the join tokens that enroll them."""

from __future__ import annotations

import typer

from mallard.cli.output import console, handle_errors, parse_duration, print_json, print_record, print_table
from mallard.client import ApiError, ControlPlaneClient

app = typer.Typer(help="Data-plane agents: list, describe, revoke; join tokens.", no_args_is_help=True)
token_app = typer.Typer(help="One-time join tokens that enroll new agents.", no_args_is_help=True)
app.add_typer(token_app, name="token")
JSON = typer.Option(False, "--json", help="Print JSON.")


@token_app.command("create")
@handle_errors
def token_create(
    name: str = typer.Option(..., "--name", help="Name the enrolled agent will have."),
    ttl: str = typer.Option("15m", "--ttl", help="How long the token stays valid (e.g. 15m, 2h)."),
    as_json: bool = JSON,
) -> None:
    """Create a one-time join token. The token is shown once; store it securely."""
    seconds = int(parse_duration(ttl).total_seconds())
    with ControlPlaneClient() as client:
        token = client.post("/join-tokens", {"name": name, "ttl_seconds": seconds})
    if as_json:
        print_json(token)
        return
    print_record({k: token.get(k) for k in ("id", "name", "expires_at")})
    console.print("\n[bold]join token (shown once):[/bold]")
    typer.echo(token["token"])
    gateway = client.profile.gateway or "HOST:PORT"
    console.print(
        f"\nstart an agent with:\n  mallard-agent run --control-plane {gateway} --join-token <token>"
        " --ca-file <ca.crt>",
        highlight=False,
    )


@token_app.command("list")
@handle_errors
def token_list(as_json: bool = JSON) -> None:
    """List join tokens (never their secrets)."""
    with ControlPlaneClient() as client:
        tokens = client.get("/join-tokens")
    if as_json:
        print_json(tokens)
    else:
        print_table(tokens, ["id", "name", "status", "expires_at", "agent_id"], title="join tokens")


@app.command("list")
@handle_errors
def list_(as_json: bool = JSON) -> None:
    """List agents with status, last seen, version and certificate expiry."""
    with ControlPlaneClient() as client:
        agents = client.get("/agents")
    if as_json:
        print_json(agents)
    else:
        print_table(agents, ["id", "name", "status", "last_seen_at", "version", "cert_expires_at"], title="agents")


@app.command("show")
@handle_errors
def show(agent: str = typer.Argument(..., help="Agent id."), as_json: bool = JSON) -> None:
    """Show what the control plane knows about one agent."""
    with ControlPlaneClient() as client:
        data = client.get(f"/agents/{agent}")
    print_json(data) if as_json else print_record(data)


@app.command("describe")
@handle_errors
def describe(
    agent: str = typer.Argument(..., help="Agent id."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for the agent's answer."),
    as_json: bool = JSON,
) -> None:
    """Ask the agent itself (over the link) for its version, host facts and capabilities."""
    with ControlPlaneClient(timeout=timeout + 10) as client:
        command = client.post(f"/agents/{agent}/describe", timeout=timeout)
    if command["state"] != "succeeded":
        if as_json:
            print_json(command)
        raise ApiError(
            f"agent {agent} did not answer: command {command['id']} is {command['state']}"
            + (f" ({command['error']})" if command.get("error") else "; is the agent online?")
        )
    if as_json:
        print_json(command["result"])
        return
    result = dict(command["result"])
    host = result.pop("host", {})
    print_record(result | {f"host.{k}": v for k, v in host.items()})


@app.command("revoke")
@handle_errors
def revoke(
    agent: str = typer.Argument(..., help="Agent id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JSON,
) -> None:
    """Revoke an agent: its certificates stop working and its live stream is cut."""
    if not yes and not typer.confirm(f"Revoke agent {agent}? It will be disconnected and cannot reconnect."):
        raise typer.Exit(1)
    with ControlPlaneClient() as client:
        data = client.post(f"/agents/{agent}/revoke")
    print_json(data) if as_json else console.print(f"agent {agent} revoked")
