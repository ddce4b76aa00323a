"""The measurements, phase by phase, each phase for both systems back to back: on a shared machine
the load changes over minutes, so the two figures a ratio compares are taken as close together
in time as possible (ours first, then Feast's stores)."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.feature_store.checks import verdict
from bench.feature_store.data import Dataset
from bench.feature_store.feast_side import Feast
from bench.feature_store.mallard_side import Mallard
from bench.feature_store.procs import OpResult, cpus, run_op
from bench.feature_store.report import latency_summary
from bench.fleet.processes import Child, Children
from bench.runlog import log

HTTP_LOAD = Path(__file__).with_name("http_load.py")
SHAPES = ("1x50", "100x50")


@dataclass
class Plan:
    """What to measure and with what."""

    dataset: Dataset
    reference: Path
    work: Path
    children: Children
    requests: dict[str, int]  # shape -> measured requests
    warmup: int
    seed: int
    ours: Mallard | None = None
    feast: Feast | None = None
    feast_stores: list[str] = field(default_factory=list)
    http: bool = True
    ours_http: bool = True


def _historical(op: OpResult, plan: Plan, path: Path) -> dict[str, Any]:
    return {
        "seconds": op.answer["seconds"],
        "wall": op.wall,
        "maxrss_kib": op.maxrss_kib,
        "baseline_kib": op.answer.get("baseline_rss_kib"),
        "load": op.load,
        "verdict": verdict(plan.dataset, path, plan.reference).to_dict(),
    }


def _materialized(op: OpResult, plan: Plan) -> dict[str, Any]:
    rows = plan.dataset.spec.rows_per_set * plan.dataset.spec.sets
    seconds = op.answer["seconds"]
    return {
        "seconds": seconds,
        "rows": rows,
        "rows_per_second": rows / seconds,
        "wall": op.wall,
        "maxrss_kib": op.maxrss_kib,
        "load": op.load,
    } | ({"phases": op.answer["phases"]} if "phases" in op.answer else {})


def _batch(shape: str) -> int:
    return int(shape.split("x")[0])


def _expected(plan: Plan, shape: str) -> int:
    spec = plan.dataset.spec
    return plan.requests[shape] * _batch(shape) * spec.sets * spec.features


def _in_process(system: Feast | Mallard, plan: Plan, shape: str) -> dict[str, Any]:
    op = system.online(_batch(shape), plan.requests[shape], plan.warmup, plan.seed)
    summary = latency_summary(op.answer["latencies"], op.answer["values"], _expected(plan, shape)) | {"load": op.load}
    log(f"  {system.name} online in-process {shape}: p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms")
    return summary


def _http(system: Feast | Mallard, port: int, plan: Plan, shape: str) -> dict[str, Any]:
    rng = random.Random(plan.seed)
    entities = plan.dataset.spec.entities
    keys = [[rng.randint(1, entities) for _ in range(_batch(shape))] for _ in range(plan.warmup + plan.requests[shape])]
    config = {
        "port": port,
        "path": system.http_path,
        "headers": system.http_headers(),
        "bodies": system.http_bodies(keys),
        "warmup": plan.warmup,
        "count_values": system.name,
    }
    argv = [sys.executable, str(HTTP_LOAD)]
    op = run_op(plan.children, f"{system.name}-http-{shape}", argv, config, plan.work, cpu=cpus()[0])
    a = op.answer
    summary = latency_summary(a["latencies"], a["values"], _expected(plan, shape), a["errors"]) | {"load": op.load}
    log(f"  {system.name} online http {shape}: p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms")
    return summary


def measure(plan: Plan) -> dict[str, Any]:
    """{"mallard": {...}, "feast": {...}} with historical, materialize and online figures."""
    ours, feast = plan.ours, plan.feast
    out: dict[str, Any] = {}
    if ours:
        out["mallard"] = {"online": {"in-process": {}}}
        log("mallard: apply (validated against the Parquet files)")
        ours.setup()
    if feast:
        out["feast"] = {"historical": {}, "materialize": {}, "online": {"in-process": {}}}
        for store in plan.feast_stores:
            log(f"feast: apply ({store} offline store)")
            feast.setup(store)

    log("materialization: the whole window, every set")
    if ours:
        out["mallard"]["materialize"] = _materialized(ours.materialize(), plan)
        log(f"  mallard {out['mallard']['materialize']['seconds']:.2f} s")
    if feast:
        for store in plan.feast_stores:
            out["feast"]["materialize"][store] = _materialized(feast.materialize(store), plan)
            log(f"  feast {store} {out['feast']['materialize'][store]['seconds']:.2f} s")

    log("historical retrieval: entity file in, Parquet out")
    if ours:
        op, path = ours.historical()
        out["mallard"]["historical"] = row = _historical(op, plan, path)
        log(f"  mallard {row['seconds']:.2f} s, {row['verdict']['missing_rows']} rows missing")
    if feast:
        for store in sorted(plan.feast_stores):  # duckdb before file: the peer the goal is tightest against
            op, path = feast.historical(store)
            out["feast"]["historical"][store] = row = _historical(op, plan, path)
            out["feast"]["version"] = op.answer.get("feast_version")
            log(f"  feast {store} {row['seconds']:.2f} s, {row['verdict']['missing_rows']} rows missing")

    log("online retrieval in-process")
    for shape in SHAPES:
        if ours:
            out["mallard"]["online"]["in-process"][shape] = _in_process(ours, plan, shape)
        if feast:
            out["feast"]["online"]["in-process"][shape] = _in_process(feast, plan, shape)

    if plan.http:
        log("online retrieval over HTTP (server and load generator on different CPUs)")
        servers: dict[str, tuple[Feast | Mallard, Child, int]] = {}
        try:
            server_cpu = cpus()[1]
            if ours and plan.ours_http:
                servers["mallard"] = (ours, *ours.serve(server_cpu))
            if feast:
                servers["feast"] = (feast, *feast.serve(server_cpu))
            for name, _ in servers.items():
                out[name]["online"]["http"] = {}
            for shape in SHAPES:
                for name, (system, _, port) in servers.items():
                    out[name]["online"]["http"][shape] = _http(system, port, plan, shape)
        finally:
            for _, child, _ in servers.values():
                child.stop()
    return out
