"""Rendering for the CLI: rich tables for people, `--json` for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mallard.client import ApiError
from mallard.config import ConfigError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> None:
    if not rows:
        console.print(f"[dim]no {title or 'items'}[/dim]")
        return
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if row.get(c) is None else str(row.get(c)) for c in columns])
    console.print(table)


def print_record(data: dict[str, Any]) -> None:
    width = max((len(k) for k in data), default=0)
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, sort_keys=True)
        console.print(f"[bold]{key.ljust(width)}[/bold]  {'' if value is None else value}", highlight=False)


def handle_errors(fn: F) -> F:
    """Turn API and configuration errors into a one-line message and exit code 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ApiError, ConfigError) as exc:
            where = f" ({exc.field})" if isinstance(exc, ApiError) and exc.field else ""
            err_console.print(f"[red]error:[/red] {exc}{where}", highlight=False)
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]


_DURATION_RE = re.compile(r"^(\d+)([smhd])$")


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `7d` -> timedelta, or a clear BadParameter."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not a duration; use e.g. 90s, 15m, 2h, 7d")
    value, unit = int(match[1]), match[2]
    return timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])
