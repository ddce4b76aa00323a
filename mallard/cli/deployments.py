"""`mallard deployments list|show`: desired state and what the agents report."""

from __future__ import annotations

from typing import Any

import typer

from mallard.cli.output import console, handle_errors, print_json, print_record, print_table
from mallard.client import ControlPlaneClient

app = typer.Typer(help="Deployments of builds and their status.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")


def ready(deployment: dict[str, Any]) -> str:
    """Ready replicas over desired ones, e.g. 2/3."""
    replicas = deployment.get("replicas") or []
    wanted = sum(v["replicas"] for v in deployment.get("variations") or [])
    return f"{sum(1 for r in replicas if r.get('ready'))}/{wanted}"


@app.command("list")
@handle_errors
def list_(
    model: str | None = typer.Option(None, "--model", "-m"),
    kind: str | None = typer.Option(None, "--kind", help="realtime | batch | streaming"),
    all_: bool = typer.Option(False, "--all", help="Include stopped deployments."),
    as_json: bool = JSON,
) -> None:
    """List deployments (active ones unless --all)."""
    with ControlPlaneClient() as cp:
        rows = cp.get("/deployments", model=model, kind=kind, all=all_ or None)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["variations_"] = ", ".join(
            f"{v['name']}{'(shadow)' if v['shadow'] else ':' + str(v['weight'])}" for v in row["variations"]
        )
        row["ready"] = ready(row)
    columns = ["id", "name", "kind", "state", "ready", "revision", "variations_", "runtime", "updated_at"]
    print_table(rows, columns, title="deployments")


@app.command("show")
@handle_errors
def show(
    deployment: str = typer.Argument(..., help="Deployment id or name."),
    history: bool = typer.Option(False, "--history", help="Also list every revision of the desired state."),
    as_json: bool = JSON,
) -> None:
    """Desired state, the agent's latest report (state, replicas, progress) and optionally the history."""
    with ControlPlaneClient() as cp:
        row = cp.get(f"/deployments/{deployment}")
        revisions = cp.get(f"/deployments/{row['id']}/history") if history else None
    if as_json:
        print_json({**row, "history": revisions} if history else row)
        return
    variations, replicas = row.pop("variations"), row.pop("replicas")
    print_record(row)
    print_table(variations, ["name", "build_id", "weight", "shadow", "replicas", "image"], title="variations")
    if replicas:
        print_table(replicas, ["variation", "build_id", "ready", "restarts"], title="replicas")
    if revisions:
        for r in revisions:
            r["variations"] = ", ".join(v["name"] for v in r["spec"].get("variations", []))
        console.print()
        print_table(revisions, ["revision", "action", "variations", "created_by", "created_at"], title="history")
