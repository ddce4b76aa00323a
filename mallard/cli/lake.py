"""`mallard lake query "SQL"`: SQL over the inference lake, run by DuckDB in the data plane."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from mallard.cli.output import console, err_console, handle_errors, print_json
from mallard.client import ControlPlaneClient
from mallard.dataplane import DataPlaneClient

app = typer.Typer(help="The inference lake: every prediction, queryable with SQL.", no_args_is_help=True)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


@app.command("query")
@handle_errors
def query(
    sql: str = typer.Argument(..., help='One SELECT over the table `predictions`, e.g. "SELECT * FROM predictions".'),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many rows (the agent caps it too)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: columns, rows, row_count, truncated."),
) -> None:
    """Run one read-only SQL query over the `predictions` table in your data plane.

    Columns: model, deployment_id, variation, build_id, request_id, timestamp (UTC), latency_ms,
    status, shadow, rows, inputs_json, outputs_json, error, date, hour.
    """
    with ControlPlaneClient() as cp, DataPlaneClient(cp) as dp:
        result = dp.lake_query(sql, limit=limit)
    if as_json:
        print_json(result)
        return
    table = Table(show_lines=False)
    for column in result["columns"]:
        table.add_column(column["name"])
    for row in result["rows"]:
        table.add_row(*[_cell(v) for v in row])
    console.print(table)
    more = " (truncated: add a LIMIT or filters to see the rest)" if result["truncated"] else ""
    err_console.print(f"{result['row_count']} row(s){more}", highlight=False)
