"""`mallard models ...`: scaffold, register and build models."""

from __future__ import annotations

import tempfile
from pathlib import Path

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from mallard.cli.follow import follow_build
from mallard.cli.output import console, err_console, handle_errors, print_json, print_record, print_table
from mallard.client import ApiError, ControlPlaneClient
from mallard.dataplane import DataPlaneClient

app = typer.Typer(help="Model projects: scaffold, register, build.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")


@app.command("init")
def init(
    directory: Path = typer.Argument(..., help="Where to create the project."),
    name: str = typer.Option("example-model", "--name", help="Model name written into mallard.yaml."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty directory."),
) -> None:
    """Scaffold a working example project (scikit-learn) with tests and mallard.yaml."""
    from mallard.scaffold import init_project

    try:
        written = init_project(directory, name=name, force=force)
    except (FileExistsError, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    for path in written:
        console.print(f"created {path}", highlight=False)
    console.print(
        f"\nnext: mallard models create {name} --project PROJECT && "
        f"mallard models build {directory} --model {name} --follow",
        highlight=False,
    )


@app.command("create")
@handle_errors
def create(
    name: str = typer.Argument(..., help="Lowercase letters, digits and '-'."),
    project: str = typer.Option(..., "--project", "-p", help="Project id or name."),
    description: str = typer.Option("", "--description", "-d"),
    as_json: bool = JSON,
) -> None:
    """Register a model in a project."""
    with ControlPlaneClient() as client:
        model = client.post("/models", {"name": name, "project": project, "description": description})
    print_json(model) if as_json else print_record(model)


@app.command("list")
@handle_errors
def list_(project: str | None = typer.Option(None, "--project", "-p"), as_json: bool = JSON) -> None:
    """List registered models."""
    with ControlPlaneClient() as client:
        models = client.get("/models", project=project)
    print_json(models) if as_json else print_table(models, ["id", "name", "project_id", "created_at"], title="models")


def _parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        params[key.strip()] = value
    return params


@app.command("build")
@handle_errors
def build(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="The model project."),
    model: str = typer.Option(..., "--model", "-m", help="Registered model name."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag the build (repeatable)."),
    param: list[str] = typer.Option([], "--param", help="Override a build param: KEY=VALUE (repeatable)."),
    builder: str = typer.Option("local", "--builder", help="local (a virtualenv) or docker."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream phases and logs until the build ends."),
    as_json: bool = JSON,
) -> None:
    """Validate, pack and upload the project to the data plane, then build it there."""
    from mallard.packing import PackingError, pack_context
    from mallard.project import ProjectError, validate_project

    params = _parse_params(param)
    if builder not in ("local", "docker"):
        raise typer.BadParameter("must be local or docker", param_hint="--builder")
    try:
        project = validate_project(directory)
    except ProjectError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    for warning in project.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    with ControlPlaneClient() as cp, tempfile.TemporaryDirectory(prefix="mallard-context-") as tmp:
        cp.get(f"/models/{model}")  # a clear "model not found" before uploading anything
        try:
            packed = pack_context(directory, Path(tmp) / "context.tar.gz")
        except PackingError as exc:
            err_console.print(f"[red]error:[/red] cannot pack {directory}: {exc}", highlight=False)
            raise typer.Exit(1) from exc
        with DataPlaneClient(cp) as dp:
            agent = dp.version()
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=err_console,
                disable=as_json,
            ) as bar:
                task = bar.add_task(f"uploading context ({len(packed.files)} files)", total=packed.size)
                dp.upload_context(packed.path, packed.digest, progress=lambda n: bar.advance(task, n))
        created = cp.post(
            f"/models/{model}/builds",
            {
                "agent_id": agent["agent_id"],
                "context_digest": packed.digest,
                "builder": builder,
                "params": params,
                "tags": tag,
            },
        )
        if not as_json:
            console.print(
                f"build [bold]{created['id']}[/bold] queued on agent {agent['agent_id']} "
                f"(context {packed.digest[:19]}…)",
                highlight=False,
            )
        if not follow:
            if as_json:
                print_json(created)
            else:
                console.print(f"follow it with: mallard builds logs {created['id']} --follow", highlight=False)
            return
        final = follow_build(cp, created["id"], console=err_console if as_json else console, show_logs=not as_json)
    _report(final, as_json)


def _report(final: dict[str, object], as_json: bool) -> None:
    if as_json:
        print_json(final)
    elif final["status"] == "SUCCEEDED":
        console.print(
            f"[green]SUCCEEDED[/green] in {final.get('duration_seconds')}s; "
            f"artifact {final.get('artifact_digest')}; metrics {final.get('metrics')}",
            highlight=False,
        )
    if final["status"] != "SUCCEEDED":
        if not as_json:
            where = f" in phase {final.get('failed_phase')}" if final.get("failed_phase") else ""
            err_console.print(
                f"[red]{final['status']}[/red]{where}: {final.get('error_summary') or ''}", highlight=False
            )
        raise typer.Exit(1)


__all__ = ["ApiError", "app"]
