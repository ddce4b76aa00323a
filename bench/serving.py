"""Serving benchmark (issue 4): our prediction gateway (REST and gRPC, inference-lake logging on
and off) against a direct in-process `predict`, a bare FastAPI endpoint doing the same work and
`mlflow models serve`, all with the same HistGradientBoostingClassifier on 20 features; and
batch scoring against raw `model.predict` on the same rows.

Servers are pinned to one core, the load generator (its own process) to the other. 1-row and
100-row payloads at concurrency 1 and 8, every target measured in turn, `--rounds` times (the
median round is reported). `make bench`, or from the repository root:

    python bench/serving.py [--quick] [--rounds 3] [--duration 5] [--json]

Method and caveats: bench/README.md. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repository root

from bench.fleet.processes import REPO_ROOT, Children, child_env
from bench.runlog import log as _log
from bench.runlog import run_main
from bench.serving_bench import mlflow_peer
from bench.serving_bench.batch import write_input
from bench.serving_bench.measure import SERVER_CPU, Durations, Target, cpus_available, run_cell
from bench.serving_bench.ours import Ours
from bench.serving_bench.peers import SERVER_ENV, start_fastapi, start_mlflow, start_replica
from bench.serving_bench.project import train, write_project
from bench.serving_bench.report import goals, key, median_cell, render
from shared.serving import DEFAULT_BATCH_ROWS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one short round, tiny batch, no MLflow, lake logging on only"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measurements of every cell (default 3; median kept)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per cell (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring (default 1)")
    parser.add_argument("--rows", default="1,100", help="rows per request, comma-separated (default 1,100)")
    parser.add_argument("--concurrency", default="1,8", help="concurrent requests, comma-separated (default 1,8)")
    parser.add_argument("--batch-rows", type=int, default=1_000_000, help="rows of the batch input (default 1e6)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow peer (no virtualenv install)")
    parser.add_argument("--no-ours", action="store_true", help="peers only (skip our stack)")
    parser.add_argument(
        "--no-lake-off", action="store_true", help="deploy ours with lake logging on only (one build, not two)"
    )
    parser.add_argument(
        "--mlflow-wait", type=float, default=900.0, help="seconds to wait for the MLflow install (default 900)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, models, stack homes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, min(args.duration, 1.0), min(args.warmup, 0.3)
        args.batch_rows, args.no_mlflow, args.no_lake_off = min(args.batch_rows, 20_000), True, True
    try:
        args.row_sizes = sorted({int(v) for v in args.rows.split(",") if v.strip()})
        args.concurrencies = sorted({int(v) for v in args.concurrency.split(",") if v.strip()})
    except ValueError:
        parser.error("--rows and --concurrency take comma-separated integers")
    if not args.row_sizes or not args.concurrencies or min(args.row_sizes + args.concurrencies) < 1:
        parser.error("--rows and --concurrency need values of 1 or more")
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0 or args.batch_rows < 1:
        parser.error("--rounds, --duration and --batch-rows must be positive, --warmup not negative")
    return args


def measure_direct(model_dir: Path, parquet: Path, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.serving_bench.direct", "--model-dir", str(model_dir)]
    argv += ["--seconds", str(max(1.0, args.duration / 2)), "--parquet", str(parquet)]
    argv += ["--batch-rows", str(DEFAULT_BATCH_ROWS)]  # the batch size our deployment uses by default
    if cpus_available():
        argv += ["--cpu", str(SERVER_CPU)]
    with (logs / "direct.log").open("ab") as handle:
        done = subprocess.run(
            argv, env=child_env(SERVER_ENV), cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=handle, check=True
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def same_model(targets: list[Target], notes: list[str]) -> None:
    """Every target answers the same probability for the same row (same artifact, same model)."""
    answers: dict[str, float] = {}
    for target in targets:
        if target.probe is None:
            continue
        try:
            answers[target.name] = target.probe()[0]
        except Exception as exc:  # a probe failing is reported, the measurement still runs
            notes.append(f"{target.name}: the same-model probe failed: {exc!r}"[:300])
    if answers and max(answers.values()) - min(answers.values()) > 1e-9:
        notes.append(f"targets answer DIFFERENT probabilities for the same row: {answers}")
    elif answers:
        notes.append(f"same model: {len(answers)} targets answer {next(iter(answers.values())):.6f} for the probe row")


def measure_cells(targets: list[Target], args: argparse.Namespace, logs: Path) -> dict[str, dict[str, Any]]:
    durations = Durations(args.warmup, args.duration)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {t.name: {} for t in targets}
    for round_no in range(1, args.rounds + 1):
        for rows in args.row_sizes:
            for concurrency in args.concurrencies:
                for target in targets:  # in turn, so slow drifts of the machine hit every target alike
                    cell = run_cell(target, rows, concurrency, durations, logs / "loadgen.log")
                    runs[target.name].setdefault(key(rows, concurrency), []).append(cell)
                    _log(
                        f"  round {round_no} {target.name:<20} {rows:>3} rows x{concurrency}: "
                        f"{cell['rps']:7.0f} req/s, p50 {cell['p50_ms']:.2f} ms, errors {cell['errors']}, "
                        f"server CPU {cell.get('server_cpu', 0):.2f}, client CPU {cell['client_cpu']:.2f}"
                    )
    return {name: {k: median_cell(v) for k, v in cells.items()} for name, cells in runs.items()}


def run(args: argparse.Namespace, work: Path, children: Children) -> dict[str, Any]:
    logs = work / "logs"
    notes: list[str] = []
    install = None if args.no_mlflow else mlflow_peer.ensure_venv(logs / "mlflow-install.log")
    if install is not None:
        _log(f"installing MLflow into {mlflow_peer.VENV} in the background (first run only; minutes)")
    project = write_project(work / "project")
    _log("training the benchmark model (python -m mallard.runtime train)")
    model_dir = train(project, work / "trained", child_env(SERVER_ENV), logs / "train.log")
    parquet = write_input(work / "batch-input.parquet", args.batch_rows)
    _log("direct in-process predict, pinned to the servers' core")
    direct = measure_direct(model_dir, parquet, args, logs)
    targets = [start_fastapi(children, model_dir, args.row_sizes)]
    ours = None
    batch: dict[str, Any] = {"rows": args.batch_rows, "raw_rows_per_s": direct["batch"]["rows_per_s"]}
    if not args.no_ours:
        try:
            targets.append(start_replica(children, model_dir, args.row_sizes))
        except Exception as exc:  # reported; the rest is still measured
            notes.append(f"replica alone: not measured: {exc}"[:400])
        ours = Ours(work, children, logs, lake_off=not args.no_lake_off)
        why_not = ours.start(project, args.row_sizes)
        if why_not:
            notes.append(f"ours: not measured: {why_not}")
        else:
            targets += ours.targets
    if install is not None:
        _log("waiting for the MLflow install")
        try:
            install.wait(args.mlflow_wait)
        except subprocess.TimeoutExpired:
            install.kill()
    if not args.no_mlflow:
        if mlflow_peer.venv_ready():
            targets.insert(1, start_mlflow(children, model_dir, work, args.row_sizes))
        else:
            notes.append(f"MLflow peer: the virtualenv did not install; see {logs / 'mlflow-install.log'}")
    same_model(targets, notes)
    _log(f"measuring {len(targets)} targets, {args.rounds} round(s) of {args.warmup:g} + {args.duration:g} s per cell")
    cells = measure_cells(targets, args, logs)
    if ours is not None and ours.ready:
        _log(f"batch scoring {args.batch_rows} rows through a batch deployment")
        batch.update(ours.batch(parquet, args.batch_rows, notes))
    setup = {
        "cpus": os.cpu_count(),
        "pinning": f"servers on CPU {SERVER_CPU}, load generator on the other"
        if cpus_available()
        else "NOT pinned (fewer than 2 CPUs available to this process)",
        "python": platform.python_version(),
        "rounds": args.rounds,
        "per cell": f"{args.warmup:g} s warm-up + {args.duration:g} s measured, closed loop",
        "rows": args.row_sizes,
        "concurrency": args.concurrencies,
    }
    return {"setup": setup, "direct": direct, "cells": cells, "batch": batch, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started: list[float] = []

    def measure(work: Path, children: Children) -> dict[str, Any]:
        started.append(time.monotonic())
        return run(args, work, children)

    def finish(data: dict[str, Any]) -> None:
        data["setup"]["seconds"] = round(time.monotonic() - started[0])
        data["goals"] = goals(data)

    return run_main(args, "mallard-bench-serving-", measure, render, logs="logs", finish=finish)


if __name__ == "__main__":
    sys.exit(main())
