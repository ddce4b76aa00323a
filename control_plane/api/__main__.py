"""`python -m control_plane.api [--host H] [--port P]`: migrate the database, then serve the API."""

from __future__ import annotations

import argparse

import uvicorn

from control_plane.api.main import create_app
from control_plane.db import migrate
from control_plane.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m control_plane.api", description=__doc__)
    parser.add_argument("--host", default=settings.api_host, help=f"bind address (default {settings.api_host})")
    parser.add_argument("--port", type=int, default=settings.api_port, help=f"port (default {settings.api_port})")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    migrate(settings.effective_database_url)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
