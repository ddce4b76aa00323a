"""`mallard projects ...`"""

from __future__ import annotations

import typer

from mallard.cli.output import handle_errors, print_json, print_record, print_table
from mallard.client import ControlPlaneClient

app = typer.Typer(help="Projects group a tenant's models, feature sets and automations.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")


@app.command("create")
@handle_errors
def create(
    name: str = typer.Argument(..., help="Lowercase letters, digits and '-'."),
    description: str = typer.Option("", "--description", "-d"),
    as_json: bool = JSON,
) -> None:
    """Create a project."""
    with ControlPlaneClient() as client:
        project = client.post("/projects", {"name": name, "description": description})
    print_json(project) if as_json else print_record(project)


@app.command("list")
@handle_errors
def list_(as_json: bool = JSON) -> None:
    """List the tenant's projects."""
    with ControlPlaneClient() as client:
        projects = client.get("/projects")
    if as_json:
        print_json(projects)
    else:
        print_table(projects, ["id", "name", "description", "created_at"], title="projects")


@app.command("show")
@handle_errors
def show(project: str = typer.Argument(..., help="Project id or name."), as_json: bool = JSON) -> None:
    """Show one project."""
    with ControlPlaneClient() as client:
        data = client.get(f"/projects/{project}")
    print_json(data) if as_json else print_record(data)
