"""Feature-store benchmark: Mallard's feature store against Feast on the same seeded Parquet files,
side by side in one run. Historical retrieval (seconds, peak memory, rows: every entity row must come
back, and every cell is checked against an independent reference), materialization (source rows/s)
and online retrieval in-process and over HTTP for 1 x 50 and 100 x 50 features (p50/p99), with
the issue-5 goals printed MET or MISSED. `make bench`, or from the repository root:

    python bench/features.py [--quick] [--json] [--no-feast] [--no-http]

Feast is installed into bench/.cache/feast-venv on first use. Method and caveats: bench/README.md.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repository root

from bench.feature_store.checks import reference
from bench.feature_store.data import Spec, generate, window_start
from bench.feature_store.feast_side import Feast, ensure_feast
from bench.feature_store.mallard_side import Mallard, http_missing, mallard_missing
from bench.feature_store.measure import Plan, measure
from bench.feature_store.procs import cpus
from bench.feature_store.report import goals, ratios, render
from bench.fleet.processes import Children
from bench.runlog import log as _log
from bench.runlog import run_main

CACHE = Path(__file__).resolve().parent / ".cache"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data and few requests: a smoke run")
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--features", type=int, default=10, help="features per set")
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--ttl-days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1000, help="measured online requests of 1 entity")
    parser.add_argument("--batch-requests", type=int, default=200, help="measured online requests of 100 entities")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests before each series")
    parser.add_argument("--feast-stores", default="file,duckdb", help="Feast offline stores to measure")
    parser.add_argument("--no-feast", action="store_true", help="measure Mallard only (no ratios, no goals)")
    parser.add_argument("--no-mallard", action="store_true", help="measure Feast only")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP servers")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, repos, results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.entities, args.days, args.entity_rows = (
            min(args.entities, 2_000),
            min(args.days, 3),
            min(args.entity_rows, 2_000),
        )
        args.requests, args.batch_requests, args.warmup = min(args.requests, 50), min(args.batch_requests, 20), 5
    args.feast_stores = [s for s in args.feast_stores.split(",") if s]
    if not set(args.feast_stores) <= {"file", "duckdb"}:
        parser.error("--feast-stores takes file and/or duckdb")
    if min(args.entities, args.days, args.sets, args.features, args.entity_rows, args.ttl_days) < 1:
        parser.error("sizes must be 1 or more")
    return args


def run(args: argparse.Namespace, work: Path, children: Children) -> dict[str, Any]:
    spec = Spec(
        entities=args.entities,
        days=args.days,
        sets=args.sets,
        features=args.features,
        entity_rows=args.entity_rows,
        ttl_days=args.ttl_days,
        seed=args.seed,
        start=window_start(args.days),
    )
    _log(f"data: {spec.rows_per_set:,} rows x {spec.sets} sets, entity frame {spec.entity_rows:,} rows (cached)")
    dataset = generate(spec, CACHE / "features-data")
    ref = reference(dataset, work / "reference.parquet")
    load_cpu, server_cpu = cpus()
    notes = []
    if load_cpu is None:
        notes.append("one CPU only: server and load generator share it (not pinned)")
    data: dict[str, Any] = {
        "setup": {
            "entities": spec.entities,
            "days": spec.days,
            "sets": spec.sets,
            "features": spec.features,
            "rows_per_set": spec.rows_per_set,
            "entity_rows": spec.entity_rows,
            "ttl_days": spec.ttl_days,
            "seed": spec.seed,
            "window": [spec.start.isoformat(), spec.end.isoformat()],
            "cpus": os.cpu_count(),
            "pinning": {"load generator / drivers": load_cpu, "servers": server_cpu},
            "python": platform.python_version(),
        },
        "notes": notes,
    }
    plan = Plan(
        dataset=dataset,
        reference=ref,
        work=work,
        children=children,
        requests={"1x50": args.requests, "100x50": args.batch_requests},
        warmup=args.warmup,
        seed=args.seed,
        feast_stores=args.feast_stores,
        http=not args.no_http,
    )
    if not args.no_mallard:
        missing = mallard_missing()
        if missing:
            notes.append(f"mallard not measured: {missing}")
        else:
            plan.ours = Mallard(dataset, work, children, load_cpu)
            if not args.no_http and http_missing():
                notes.append(f"mallard not measured over HTTP: {http_missing()}")
                plan.ours_http = False
    if not args.no_feast:
        plan.feast = Feast(ensure_feast(CACHE), dataset, work, children, load_cpu)
        plan.feast.online_store = "duckdb" if "duckdb" in args.feast_stores else args.feast_stores[0]
    data.update(measure(plan))
    data["setup"]["feast_version"] = (data.get("feast") or {}).get("version")
    data["ratios"] = ratios(data)
    data["goals"] = goals(data)
    return data


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(args, "mallard-bench-features-", lambda work, children: run(args, work, children), render)


if __name__ == "__main__":
    sys.exit(main())
