"""Figures, ratios against the peers measured in the same run, and the issue's goals (MET/MISSED)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FASTAPI = "bare FastAPI"
MLFLOW = "MLflow serve"
OURS_REST = "ours REST"
OURS_REST_NOLOG = "ours REST, no lake"
OURS_GRPC = "ours gRPC"
OURS_GRPC_NOLOG = "ours gRPC, no lake"
REPLICA = "ours: replica alone"
OURS = (OURS_REST, OURS_GRPC)
NOLOG = {OURS_REST: OURS_REST_NOLOG, OURS_GRPC: OURS_GRPC_NOLOG}


def key(rows: int, concurrency: int) -> str:
    return f"{rows}x{concurrency}"


def median_cell(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median throughput (its latencies come with it), plus every round's req/s."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    cell = dict(ordered[(len(ordered) - 1) // 2])
    cell["rps_rounds"] = [round(r["rps"], 1) for r in runs]
    cell["errors"] = sum(r["errors"] for r in runs)
    return cell


def _rps(cells: dict[str, dict[str, Any]], target: str, k: str) -> float | None:
    cell = cells.get(target, {}).get(k)
    return None if cell is None else float(cell["rps"])


def _capacity(cells: dict[str, dict[str, Any]], target: str, k: str) -> float | None:
    """Requests per second of server CPU (1000 / server CPU ms per request): throughput had the
    server had its core to itself, robust to other work on a shared machine."""
    cell = cells.get(target, {}).get(k)
    ms = None if cell is None else cell.get("server_cpu_ms_per_req")
    return 1000.0 / ms if ms else None


def _p50(cells: dict[str, dict[str, Any]], target: str, k: str) -> float | None:
    cell = cells.get(target, {}).get(k)
    return None if cell is None else float(cell["p50_ms"])


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each issue-4 goal with what was measured and met True/False (None: not measured)."""
    cells: dict[str, dict[str, Any]] = data["cells"]
    grid = [key(r, c) for r in data["setup"]["rows"] for c in data["setup"]["concurrency"]]
    out: list[dict[str, Any]] = []
    for ours in OURS:
        out.append(_versus_mlflow(cells, ours, grid, _rps))
        out[-1]["per_cpu"] = _versus_mlflow(cells, ours, grid, _capacity)
    for ours in OURS:
        deltas = {}
        for r in data["setup"]["rows"]:
            k = key(r, 1)
            a, b = _p50(cells, ours, k), _p50(cells, FASTAPI, k)
            if a is not None and b is not None:
                deltas[k] = a - b
        worst = max(deltas, key=lambda k: deltas[k]) if deltas else None
        out.append(
            {
                "goal": f"{ours}: p50 at concurrency 1 within 1 ms of the bare FastAPI endpoint",
                "measured": f"worst +{deltas[worst]:.2f} ms ({worst})" if worst else "not measured",
                "met": max(deltas.values()) <= 1.0 if deltas else None,
            }
        )
    for ours in OURS:
        k = key(1, max(data["setup"]["concurrency"]))
        out.append(_batching(cells, ours, k, _rps))
        out[-1]["per_cpu"] = _batching(cells, ours, k, _capacity)
    for ours, off in NOLOG.items():
        out.append(_lake_cost(cells, ours, off, grid, _rps))
        out[-1]["per_cpu"] = _lake_cost(cells, ours, off, grid, _capacity)
    batch = data.get("batch") or {}
    ours_rate, raw_rate = batch.get("ours_rows_per_s"), batch.get("raw_rows_per_s")
    out.append(
        {
            "goal": "batch scoring >= 80% of raw model.predict throughput",
            "measured": f"{100 * ours_rate / raw_rate:.0f}%" if ours_rate and raw_rate else "not measured",
            "met": ours_rate / raw_rate >= 0.8 if ours_rate and raw_rate else None,
        }
    )
    return out


Metric = Callable[[dict[str, dict[str, Any]], str, str], float | None]


def _versus_mlflow(cells: dict[str, dict[str, Any]], ours: str, grid: list[str], metric: Metric) -> dict[str, Any]:
    ratios = {k: (metric(cells, ours, k), metric(cells, MLFLOW, k)) for k in grid}
    known = {k: a / b for k, (a, b) in ratios.items() if a is not None and b}
    worst = min(known, key=lambda k: known[k]) if known else None
    return {
        "goal": f"{ours}: >= 4x MLflow's throughput in every cell",
        "measured": f"worst {known[worst]:.2f}x ({worst})" if worst else "not measured",
        "met": (len(known) == len(grid) and min(known.values()) >= 4.0) if known else None,
    }


def _batching(cells: dict[str, dict[str, Any]], ours: str, k: str, metric: Metric) -> dict[str, Any]:
    a, b = metric(cells, ours, k), metric(cells, FASTAPI, k)
    return {
        "goal": f"{ours}: micro-batching >= 1.5x the bare endpoint's throughput ({k})",
        "measured": f"{a / b:.2f}x" if a is not None and b else "not measured",
        "met": a / b >= 1.5 if a is not None and b else None,
    }


def _lake_cost(
    cells: dict[str, dict[str, Any]], ours: str, off: str, grid: list[str], metric: Metric
) -> dict[str, Any]:
    costs = {}
    for k in grid:
        on, no = metric(cells, ours, k), metric(cells, off, k)
        if on is not None and no:
            costs[k] = 1 - on / no
    worst = max(costs, key=lambda k: costs[k]) if costs else None
    return {
        "goal": f"{ours}: lake logging costs < 10% of throughput",
        "measured": f"worst {100 * costs[worst]:.1f}% ({worst})" if worst else "not measured",
        "met": max(costs.values()) < 0.10 if costs else None,
    }


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(data: dict[str, Any]) -> str:
    setup, cells = data["setup"], data["cells"]
    lines = ["Serving benchmark (issue 4): HistGradientBoostingClassifier, 20 float features", ""]
    lines += [f"  {k}: {v}" for k, v in setup.items() if k not in ("rows", "concurrency")]
    lines.append("")
    direct = data.get("direct", {}).get("calls", {})
    if direct:
        lines.append("direct in-process model.predict (no server, one core):")
        for n, d in direct.items():
            per_cpu = f", {d['calls_per_cpu_s']:.0f} per CPU-second" if d.get("calls_per_cpu_s") else ""
            lines.append(f"  {n:>3} rows: {d['calls_per_s']:8.0f} calls/s{per_cpu}, p50 {d['p50_ms']:.2f} ms")
        lines.append("")
    order = (FASTAPI, MLFLOW, OURS_REST, OURS_REST_NOLOG, OURS_GRPC, OURS_GRPC_NOLOG, REPLICA)
    targets = [t for t in order if t in cells]
    targets += [t for t in cells if t not in targets]
    header = f"{'target':<22}{'rows':>5}{'conc':>5}{'req/s':>9}{'rows/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
    header += f"{'xMLflow':>9}{'xFastAPI':>9}{'srv ms/req':>11}{'req/CPU-s':>10}{'errors':>7}"
    lines += [header, "-" * len(header)]
    for r in setup["rows"]:
        for c in setup["concurrency"]:
            k = key(r, c)
            for t in targets:
                cell = cells[t].get(k)
                if cell is None:
                    continue
                mlflow, fastapi = _rps(cells, MLFLOW, k), _rps(cells, FASTAPI, k)
                lines.append(
                    f"{t:<22}{r:>5}{c:>5}{cell['rps']:>9.0f}{cell['rps'] * r:>10.0f}{cell['p50_ms']:>8.2f}"
                    f"{cell['p99_ms']:>8.2f}{_fmt(cell['rps'] / mlflow if mlflow else None, '.2f'):>9}"
                    f"{_fmt(cell['rps'] / fastapi if fastapi else None, '.2f'):>9}"
                    f"{_fmt(cell.get('server_cpu_ms_per_req'), '.2f'):>11}"
                    f"{_fmt(_capacity(cells, t, k), '.0f'):>10}{cell['errors']:>7}"
                )
            lines.append("")
    batch = data.get("batch")
    if batch:
        lines.append("batch scoring:")
        for k, v in batch.items():
            lines.append(f"  {k}: {v:.0f}" if isinstance(v, float) else f"  {k}: {v}")
        lines.append("")
    lines.append("goals (issue 4):")
    words = {True: "MET", False: "MISSED", None: "NOT MEASURED"}
    for g in data.get("goals") or goals(data):
        line = f"  {words[g['met']]:<13}{g['goal']}: {g['measured']}"
        if g.get("per_cpu") and g["per_cpu"]["met"] is not None:
            line += f"  [per server CPU-second: {g['per_cpu']['measured']}, {words[g['per_cpu']['met']]}]"
        lines.append(line)
    notes = list(data.get("notes") or [])
    for r in setup["rows"]:
        k, calls = key(r, 1), direct.get(str(r), {}).get("calls_per_cpu_s")
        mlflow = _capacity(cells, MLFLOW, k)
        if calls and mlflow:
            notes.append(
                f"ceiling at {k}: a server doing nothing but model.predict ({calls:.0f} calls per CPU-second) "
                f"would reach {calls / mlflow:.1f}x MLflow per server CPU-second (concurrency 1 cannot batch)"
            )
    if notes:
        lines += ["", "notes:", *(f"  - {n}" for n in notes)]
    return "\n".join(lines)
