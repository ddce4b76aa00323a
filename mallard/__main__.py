"""`python -m mallard` is the `mallard` command."""

from mallard.cli.main import app

app(prog_name="mallard")
