"""`mallard`: the command line for data scientists and platform engineers."""

from __future__ import annotations

import typer

from mallard.cli import agents, builds, deployments, dev, features, lake, models, projects, serving
from shared import __version__

app = typer.Typer(
    name="mallard",
    help="Mallard: build, deploy and monitor models; the control plane keeps metadata, your network keeps data.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(dev.app, name="dev")
app.add_typer(projects.app, name="projects")
app.add_typer(agents.app, name="agents")
app.add_typer(models.app, name="models")
app.add_typer(builds.app, name="builds")
app.add_typer(lake.app, name="lake")
app.add_typer(deployments.app, name="deployments")
app.add_typer(features.app, name="features")
serving.register(models.app)  # models deploy | undeploy | predict


@app.command()
def version() -> None:
    """Print the CLI version."""
    typer.echo(f"mallard {__version__}")


if __name__ == "__main__":
    app()
