"""Figures per system, ratios against Feast measured in the same run, the issue-5 goals (MET /
MISSED) and the printed table."""

from __future__ import annotations

import math
from typing import Any

HISTORICAL_VS_DUCKDB = 4.0
HISTORICAL_VS_FILE = 20.0
MATERIALIZE_VS_FEAST = 20.0
ONLINE_1_FRACTION = 1 / 3
ONLINE_100_FRACTION = 1 / 10


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `samples`."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(latencies: list[float], values: int, expected: int, errors: int = 0) -> dict[str, Any]:
    """p50/p99/max in milliseconds, request count, and how many feature values came back non-null."""
    return {
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "values": values,
        "expected_values": expected,
        "errors": errors,
    }


def _get(data: dict[str, Any], *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _ratio(peer: float | None, ours: float | None) -> float | None:
    return peer / ours if peer and ours else None


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of the issue with the ratio measured in this run; `met` is None when not measured."""
    feast, ours = data.get("feast") or {}, data.get("mallard") or {}
    out: list[dict[str, Any]] = []
    every_row = _get(ours, "historical", "verdict", "missing_rows") == 0

    for store, factor in (("duckdb", HISTORICAL_VS_DUCKDB), ("file", HISTORICAL_VS_FILE)):
        ratio = _ratio(_get(feast, "historical", store, "seconds"), _get(ours, "historical", "seconds"))
        goal = f"historical >= {factor:g}x Feast {store}, every row"
        out.append(_goal(goal, ratio, factor, ratio is not None and ratio >= factor and every_row, "x faster"))

    peer_rates = [v["rows_per_second"] for v in (feast.get("materialize") or {}).values()]
    ours_rate = _get(ours, "materialize", "rows_per_second")
    ratio = ours_rate / max(peer_rates) if ours_rate and peer_rates else None
    goal = f"materialization >= {MATERIALIZE_VS_FEAST:g}x Feast (its faster store)"
    out.append(_goal(goal, ratio, MATERIALIZE_VS_FEAST, ratio is not None and ratio >= MATERIALIZE_VS_FEAST, "x"))

    for where in ("in-process", "http"):
        for batch, fraction in (("1x50", ONLINE_1_FRACTION), ("100x50", ONLINE_100_FRACTION)):
            peer = _get(feast, "online", where, batch, "p99_ms")
            mine = _get(ours, "online", where, batch, "p99_ms")
            share = mine / peer if peer and mine else None
            goal = f"online p99 {batch} {where} <= 1/{round(1 / fraction)} of Feast"
            out.append(_goal(goal, share, fraction, share is not None and share <= fraction, "of Feast"))
    return out


def ratios(data: dict[str, Any]) -> dict[str, float]:
    """Every side-by-side ratio of the run (the goals use some of them): speed-ups as Feast / ours
    (higher is better for us), latencies as ours / Feast (lower is better for us)."""
    feast, ours = data.get("feast") or {}, data.get("mallard") or {}
    out: dict[str, float] = {}
    for store, row in (feast.get("historical") or {}).items():
        mine = _get(ours, "historical", "seconds")
        if mine:
            out[f"historical speed-up over Feast {store} (its s / ours)"] = row["seconds"] / mine
    for store, row in (feast.get("materialize") or {}).items():
        mine = _get(ours, "materialize", "rows_per_second")
        if mine:
            out[f"materialization speed-up over Feast {store} (rows/s)"] = mine / row["rows_per_second"]
    for where, shapes in (feast.get("online") or {}).items():
        for shape, peer in shapes.items():
            mine = _get(ours, "online", where, shape)
            if mine:
                for q in ("p50", "p99"):
                    out[f"online {where} {shape} {q}, ours / Feast"] = mine[f"{q}_ms"] / peer[f"{q}_ms"]
    return out


def _goal(goal: str, value: float | None, limit: float, met: bool, unit: str) -> dict[str, Any]:
    return {"goal": goal, "value": value, "limit": limit, "unit": unit, "met": None if value is None else met}


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}"


def render(data: dict[str, Any]) -> str:
    setup = data["setup"]
    feast, ours = data.get("feast") or {}, data.get("mallard") or {}
    lines = [
        f"Feature-store benchmark: {setup['entities']:,} entities x {setup['days']} days x {setup['sets']} sets x "
        f"{setup['features']} features ({setup['rows_per_set']:,} rows per set), TTL {setup['ttl_days']} d, "
        f"entity frame {setup['entity_rows']:,} rows; {setup['cpus']} CPUs, load {setup.get('loadavg_start')} at "
        f"start, {setup.get('loadavg_end')} at end; Feast {setup.get('feast_version') or 'not run'}",
        "",
        "historical retrieval (entity Parquet in -> result Parquet out), fresh process each"
        " (seconds: the call; wall: the process, start-up and imports included):",
        f"  {'system':<22} {'seconds':>8} {'wall s':>7} {'peak MiB':>9} {'base MiB':>9} {'rows':>9} {'missing':>8} "
        f"{'dup':>5} {'wrong cells':>12} {'nulls':>9} {'ref nulls':>9} {'load':>5}",
    ]
    rows = [(f"feast {k}", v) for k, v in (feast.get("historical") or {}).items()]
    if ours.get("historical"):
        rows.append(("mallard", ours["historical"]))
    for name, row in rows:
        v = row.get("verdict") or {}
        lines.append(
            f"  {name:<22} {row['seconds']:>8.2f} {_fmt(row.get('wall')):>7} {_mib(row.get('maxrss_kib')):>9} "
            f"{_mib(row.get('baseline_kib')):>9} "
            f"{v.get('rows', 0):>9,} {v.get('missing_rows', 0):>8,} {v.get('duplicate_rows', 0):>5,} "
            f"{v.get('wrong_cells', 0):>12,} {v.get('null_cells', 0):>9,} {v.get('expected_null_cells', 0):>9,}"
            f" {_fmt(row.get('load'), '.1f'):>5}"
        )
    lines += ["", "materialization (whole window into the SQLite online store), fresh process each:"]
    lines.append(f"  {'system':<22} {'seconds':>8} {'wall s':>7} {'source rows/s':>14} {'peak MiB':>9} {'load':>5}")
    mats = [(f"feast {k}", v) for k, v in (feast.get("materialize") or {}).items()]
    if ours.get("materialize"):
        mats.append(("mallard", ours["materialize"]))
    for name, row in mats:
        lines.append(
            f"  {name:<22} {row['seconds']:>8.2f} {_fmt(row.get('wall')):>7} {row['rows_per_second']:>14,.0f} "
            f"{_mib(row.get('maxrss_kib')):>9}"
            f" {_fmt(row.get('load'), '.1f'):>5}"
        )
    phases = (ours.get("materialize") or {}).get("phases")
    if phases:
        split = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items())
        lines.append(f"  mallard's time by phase (its progress reports, all sets): {split}")
    lines += ["", "online retrieval, sequential requests, random keys (ms):"]
    head = f"  {'system':<10} {'where':<11} {'shape':<7} {'n':>5} {'p50':>8} {'p99':>8} {'max':>8} {'values':>19}"
    lines.append(head + f" {'load':>5}")
    for name, side in (("feast", feast), ("mallard", ours)):
        for where, shapes in (side.get("online") or {}).items():
            for shape, s in shapes.items():
                found = f"{s['values']:,}/{s['expected_values']:,}"
                lines.append(
                    f"  {name:<10} {where:<11} {shape:<7} {s['requests']:>5} {s['p50_ms']:>8.2f} "
                    f"{s['p99_ms']:>8.2f} {s['max_ms']:>8.2f} {found:>19} {_fmt(s.get('load'), '.1f'):>5}"
                    + (f" {s['errors']} errors" if s["errors"] else "")
                )
    lines.append("  (load: the 1-minute load average when each measurement started; other work shares the CPUs)")
    if data.get("ratios"):
        lines += ["", "ratios (same run):"]
        lines += [f"  {name:<58} {value:>7.3f}" for name, value in data["ratios"].items()]
    lines += ["", "goals (ratios against Feast measured in this run):"]
    for g in data["goals"]:
        if g["met"] is None:
            lines.append(f"  {g['goal']:<46} {'-':>7}           not measured")
            continue
        verdict = "MET" if g["met"] else "MISSED"
        lines.append(f"  {g['goal']:<46} {g['value']:>7.3f} {g['unit']:<9} {verdict}")
    for note in data.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
