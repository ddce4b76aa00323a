"""`python -m data_plane_agent` is `mallard-agent`."""

from data_plane_agent.cli import app

app(prog_name="mallard-agent")
