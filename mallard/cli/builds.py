"""`mallard builds ...`: list, show, logs, cancel and compare builds."""

from __future__ import annotations

import sys

import typer

from mallard.cli.follow import FINAL, follow_build
from mallard.cli.models import _report
from mallard.cli.output import console, handle_errors, print_json, print_record, print_table
from mallard.client import ControlPlaneClient
from mallard.dataplane import DataPlaneClient

app = typer.Typer(help="Builds of models: status, logs, cancel, compare.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print JSON.")


@app.command("list")
@handle_errors
def list_(
    model: str | None = typer.Option(None, "--model", "-m"),
    status: str | None = typer.Option(None, "--status", help="QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED."),
    tag: str | None = typer.Option(None, "--tag", "-t"),
    metric: str | None = typer.Option(None, "--metric", help="e.g. 'accuracy>0.9'"),
    limit: int = typer.Option(50, "--limit"),
    as_json: bool = JSON,
) -> None:
    """List builds, newest first, filtered by model, status, tag or a metric condition."""
    with ControlPlaneClient() as cp:
        rows = cp.get("/builds", model=model, status=status, tag=tag, metric=metric, limit=limit)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        row["metrics"] = ", ".join(f"{k}={v:.4g}" for k, v in sorted(row["metrics"].items())) or ""
        row["tags"] = ",".join(row["tags"])
    print_table(
        rows, ["id", "model", "status", "builder", "tags", "metrics", "duration_seconds", "created_at"], title="builds"
    )


@app.command("show")
@handle_errors
def show(build_id: str, as_json: bool = JSON) -> None:
    """Status, phase timeline, params, metrics and artifact of one build."""
    with ControlPlaneClient() as cp:
        build = cp.get(f"/builds/{build_id}")
    if as_json:
        print_json(build)
        return
    phases = build.pop("phases")
    print_record(build)
    for entry in phases:
        console.print(f"  {entry['at']}  {entry['phase']:<22} {entry['state']}", highlight=False)


@app.command("logs")
@handle_errors
def logs(
    build_id: str, follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming until it ends.")
) -> None:
    """Print a build's full log (kept in the data plane)."""
    with ControlPlaneClient() as cp:
        if follow:
            build = cp.get(f"/builds/{build_id}")
            if build["status"] not in FINAL:
                _report(follow_build(cp, build_id, console=console), False)
                return
        build = cp.get(f"/builds/{build_id}")
        with DataPlaneClient(cp, build.get("data_plane_url") or None) as dp:
            offset = 0
            while True:
                chunk, offset, _ = dp.logs(build_id, offset)
                if not chunk:
                    break
                sys.stdout.write(chunk.decode("utf-8", "replace"))


@app.command("cancel")
@handle_errors
def cancel(build_id: str, as_json: bool = JSON) -> None:
    """Cancel a queued or running build (works in every phase)."""
    with ControlPlaneClient() as cp:
        build = cp.post(f"/builds/{build_id}/cancel")
    print_json(build) if as_json else console.print(f"cancellation of {build_id} requested", highlight=False)


@app.command("compare")
@handle_errors
def compare(build_a: str, build_b: str, as_json: bool = JSON) -> None:
    """What differs between two builds: params, metrics (with deltas), context, artifact."""
    with ControlPlaneClient() as cp:
        diff = cp.get(f"/builds/{build_a}/compare/{build_b}")
    if as_json:
        print_json(diff)
        return
    console.print(f"[bold]{build_a}[/bold] vs [bold]{build_b}[/bold]", highlight=False)
    for section in ("params", "metrics"):
        for key, pair in diff[section].items():
            delta = diff["metric_delta"].get(key) if section == "metrics" else None
            extra = f"  (Δ {delta:+.4g})" if isinstance(delta, float) else ""
            console.print(f"  {section[:-1]} {key}: {pair['a']} → {pair['b']}{extra}", highlight=False)
    console.print(f"  same context: {diff['same_context']}; same artifact: {diff['same_artifact']}")
