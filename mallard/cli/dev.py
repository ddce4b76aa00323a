"""`mallard dev up|down|status`: the all-in-one local stack."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import typer

from mallard.cli.output import console, err_console, print_json, print_record
from mallard.dev import DevStack, StackError
from mallard.dev.stack import default_home

app = typer.Typer(help="Run the whole platform locally on embedded defaults.", no_args_is_help=True)
HOME = typer.Option(
    None, "--home", help="Where the stack keeps its state (default ~/.mallard/dev or $MALLARD_DEV_HOME)."
)


@app.command()
def up(
    home: Path | None = HOME,
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Return once the stack is up; stop it with `mallard dev down`."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print dev.json when ready."),
) -> None:
    """Start the control-plane API, gateway, scheduler and one enrolled agent; write DIR/dev.json and a CLI profile."""
    stack = DevStack(home or default_home())
    try:
        if as_json:
            info = stack.up()
        else:
            with console.status("starting the Mallard dev stack") as status:

                def progress(message: str) -> None:
                    status.update(message)
                    console.print(f"[dim]•[/dim] {message}")

                info = stack.up(progress=progress)
    except StackError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    if as_json:
        print_json(info)
    else:
        console.print("\n[bold green]Mallard dev stack is up[/bold green]")
        print_record(
            {
                "api": info["api_url"] + "  (OpenAPI: " + info["api_url"] + "/docs)",
                "gateway": f"{info['gateway']} (mTLS link), {info['enroll']} (enrollment)",
                "data plane": info["data_plane_url"],
                "agent": info["agent_id"],
                "tenant": info["tenant_id"],
                "state": str(stack.home),
                "dev.json": str(stack.dev_json),
                "logs": str(stack.logs),
            }
        )
        console.print("\nthe `mallard` CLI now talks to this stack (profile 'dev'); try `mallard agents list`")
    if detach:
        if not as_json:
            console.print(f"stop it with: mallard dev down --home {stack.home}", highlight=False)
        return
    console.print("press Ctrl-C to stop")
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping:
            if len(stack.running()) < 4:
                err_console.print("[red]a stack process exited; stopping the rest[/red]")
                break
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    stopped = stack.down()
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def down(
    home: Path | None = HOME,
    purge: bool = typer.Option(
        False, "--purge", help="Also delete the stack's state (database, keys, agent identity)."
    ),
) -> None:
    """Stop every process of the dev stack; nothing is left running."""
    stack = DevStack(home or default_home())
    stopped = stack.down(purge=purge)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}" + (" (state deleted)" if purge else ""))


@app.command()
def status(home: Path | None = HOME, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show which processes of the dev stack are running."""
    stack = DevStack(home or default_home())
    from mallard.dev import processes

    procs = processes.load(stack.pids_file)
    rows = {p.name: ("running" if processes.is_alive(p) else "stopped") for p in procs}
    data = {"home": str(stack.home), "healthy": stack.healthy(), "processes": rows}
    if as_json:
        print_json(data)
    else:
        print_record({"home": data["home"], "healthy": data["healthy"]} | rows)
    if not data["healthy"]:
        raise typer.Exit(1)
