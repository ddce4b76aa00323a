"""`mallard features ...`: define features once; train on point-in-time joins, serve them online.

Definitions go to the control plane (metadata only); values are read from the data plane.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from mallard.cli.output import console, err_console, handle_errors, print_json, print_record, print_table
from mallard.client import ApiError, ControlPlaneClient
from mallard.dataplane import DataPlaneClient

app = typer.Typer(help="Feature store: apply definitions, materialize, read training sets and online values.")
JSON = typer.Option(False, "--json", help="Print JSON.")
PROJECT = typer.Option(None, "--project", "-p", help="Project id or name (needed when a name is in several).")
FINAL = {"SUCCEEDED", "FAILED"}


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def _wait_command(cp: ControlPlaneClient, command_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        command: dict[str, Any] = cp.get(f"/commands/{command_id}")
        if command["state"] not in ("pending", "delivered") or time.monotonic() > deadline:
            return command
        time.sleep(0.2)


@app.command("apply")
@handle_errors
def apply(
    directory: Path = typer.Argument(..., exists=True, file_okay=False, help="Directory of Python definition files."),
    project: str = typer.Option(..., "--project", "-p", help="Project id or name."),
    check_data: bool = typer.Option(True, "--check-data/--no-check-data", help="Validate against the data here."),
    wait: float = typer.Option(60.0, "--wait", help="Seconds to wait for the agent to confirm (0: don't)."),
    as_json: bool = JSON,
) -> None:
    """Validate the definitions locally, register them on the control plane and send them to the agent."""
    from mallard.features import Entity, FeatureDefinitionError, load_definitions, validate

    try:
        definitions = load_definitions(directory)
        if check_data:
            validate(definitions)
    except FeatureDefinitionError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        raise _fail(f"{exc.message}{where}; nothing was registered") from exc
    entries = [
        {"name": d.name, "version": d.version, "kind": d.kind, "definition": d.to_dict()}
        for d in definitions
        if not isinstance(d, Entity)
    ]
    if not entries:
        raise _fail(f"{directory} defines no FeatureSet or StreamFeatureSet; nothing was registered")
    with ControlPlaneClient() as cp:
        body: dict[str, Any] = {"project": project, "definitions": entries}
        if cp.profile.data_plane_url:
            with DataPlaneClient(cp) as dp:
                body["agent_id"] = dp.version()["agent_id"]
        applied = cp.post("/feature-sets", body)
        command = _wait_command(cp, applied["command_id"], wait) if wait > 0 else None
    rows = [
        {"name": f["name"], "version": f["version"], "kind": f["kind"], "change": f["change"], "id": f["id"]}
        for f in applied["feature_sets"]
    ]
    if as_json:
        print_json({**applied, "agent": command})
    else:
        print_table(rows, ["name", "version", "kind", "change", "id"], title="feature sets")
    if command is not None and command["state"] == "failed":
        raise _fail(f"the agent refused the definitions: {command.get('error')}")
    if command is not None and command["state"] != "succeeded" and not as_json:
        err_console.print(f"[yellow]the agent has not confirmed yet ({command['state']})[/yellow]", highlight=False)


@app.command("list")
@handle_errors
def list_(project: str | None = PROJECT, as_json: bool = JSON) -> None:
    """Every registered feature-set version with its freshness."""
    with ControlPlaneClient() as cp:
        sets = cp.get("/feature-sets", project=project)
    if as_json:
        print_json(sets)
        return
    rows = [
        {
            **s,
            "last_materialized_at": s["freshness"]["last_materialized_at"],
            "offline_rows": s["freshness"]["offline_rows"],
            "online_keys": s["freshness"]["online_keys"],
        }
        for s in sets
    ]
    columns = [
        "name",
        "version",
        "kind",
        "project",
        "agent_status",
        "schedule",
        "last_materialized_at",
        "offline_rows",
        "online_keys",
    ]
    print_table(rows, columns, title="feature sets")


@app.command("show")
@handle_errors
def show(
    feature_set: str = typer.Argument(..., help="Feature-set name or id."),
    project: str | None = PROJECT,
    version: int | None = typer.Option(None, "--version", "-v", help="Default: the latest."),
    as_json: bool = JSON,
) -> None:
    """One feature set: its definition, freshness and recent materializations."""
    with ControlPlaneClient() as cp:
        found = cp.get(f"/feature-sets/{feature_set}", project=project, version=version)
    print_json(found) if as_json else print_record(found)


@app.command("materialize")
@handle_errors
def materialize(
    feature_set: str = typer.Argument(..., help="Feature-set name or id."),
    start: str | None = typer.Option(None, "--start", help="Backfill from (ISO-8601); default: incremental."),
    end: str | None = typer.Option(None, "--end", help="Backfill until (ISO-8601, exclusive); default: now."),
    project: str | None = PROJECT,
    version: int | None = typer.Option(None, "--version", "-v", help="Default: the latest."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Show progress until it ends."),
    as_json: bool = JSON,
) -> None:
    """Fill the offline and online stores on the agent: incrementally, or a backfill of [start, end)."""
    body = {k: v for k, v in {"project": project, "version": version, "start": start, "end": end}.items() if v}
    with ControlPlaneClient() as cp:
        job: dict[str, Any] = cp.post(f"/feature-sets/{feature_set}/materialize", body)
        if follow:
            job = _follow(cp, job, quiet=as_json)
    if as_json:
        print_json(job)
    elif job["status"] == "SUCCEEDED":
        console.print(f"[green]SUCCEEDED[/green]: {job['rows_done']} source rows materialized", highlight=False)
    elif not follow:
        console.print(f"materialization {job['id']} queued", highlight=False)
    if job["status"] == "FAILED":
        raise _fail(f"materialization {job['id']} failed: {job.get('error_summary')}")


def _follow(cp: ControlPlaneClient, job: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
    ) as bar:
        task = bar.add_task("materializing (queued)", total=None)
        while job["status"] not in FINAL:
            time.sleep(0.25)
            job = cp.get(f"/feature-materializations/{job['id']}")
            bar.update(
                task,
                description=f"materializing ({job['status'].lower()})",
                completed=job["rows_done"],
                total=job["rows_total"],
            )
    return job


@app.command("get-historical")
@handle_errors
def get_historical(
    entities: Path = typer.Option(..., "--entities", exists=True, dir_okay=False, help="Parquet or CSV entity rows."),
    features: str = typer.Option(..., "--features", help="set:feature,... (set@2:feature, set:*)."),
    out: Path = typer.Option(..., "--out", help="Where to write the Parquet result."),
    project: str | None = PROJECT,
    timestamp_column: str = typer.Option("event_timestamp", "--timestamp-column"),
    full_feature_names: bool = typer.Option(False, "--full-feature-names", help="Columns named set__feature."),
    as_json: bool = JSON,
) -> None:
    """A point-in-time correct training set: every entity row with its features as of its timestamp."""
    from mallard.feature_store import FeatureStore

    refs = [r.strip() for r in features.split(",") if r.strip()]
    with FeatureStore(project=project) as store:
        store.get_historical(
            entities, refs, out=out, timestamp_column=timestamp_column, full_feature_names=full_feature_names
        )
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(out).metadata.num_rows
    result = {"out": str(out), "rows": rows, "features": refs}
    print_json(result) if as_json else console.print(f"wrote {rows} rows to {out}", highlight=False)


def _parse_key(text: str) -> dict[str, Any]:
    key: dict[str, Any] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{text!r} is not COLUMN=VALUE[,COLUMN=VALUE]", param_hint="--key")
        key[name.strip()] = value.strip()
    return key


@app.command("get-online")
@handle_errors
def get_online(
    feature_set: str = typer.Argument(..., help="Feature-set name."),
    key: list[str] = typer.Option(..., "--key", "-k", help="An entity: COLUMN=VALUE[,COLUMN=VALUE] (repeatable)."),
    features: str | None = typer.Option(None, "--features", "-f", help="Comma-separated; default: all."),
    version: int | None = typer.Option(None, "--version", "-v", help="Default: the latest."),
    project: str | None = PROJECT,
    as_json: bool = JSON,
) -> None:
    """Current values for one or more entities, from the online store (one round trip)."""
    from mallard.feature_store import FeatureStore

    keys = [_parse_key(k) for k in key]
    wanted = [f.strip() for f in features.split(",") if f.strip()] if features else None
    with FeatureStore(project=project) as store:
        rows = store.get_online(feature_set, keys, wanted, version)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, list(rows[0]) if rows else [], title=feature_set)


__all__ = ["ApiError", "app"]
