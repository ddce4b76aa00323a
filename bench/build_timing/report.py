"""Medians per builder and kind of run, ratios against the peer, the goal lines and the table."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.build_timing.runs import PHASES, BuildTiming, median

WARM_LOCAL_GOAL = 10.0
WARM_DOCKER_GOAL = 30.0
OVERHEAD_GOAL = 1.0
SPLIT = ("client", "dispatch", "report", "follow")
PHASE_LABELS = {"fetch_context": "fetch", "resolve_dependencies": "resolve"} | {p: p for p in PHASES[2:]}


def summarize(builds: list[BuildTiming]) -> list[dict[str, Any]]:
    """One row per (builder, kind): medians of wall, agent, overhead, each split and each phase."""
    rows: list[dict[str, Any]] = []
    for key in dict.fromkeys((b.builder, b.kind) for b in builds):
        runs = [b for b in builds if (b.builder, b.kind) == key]
        rows.append(
            {
                "builder": key[0],
                "kind": key[1],
                "runs": len(runs),
                "wall": median([b.wall for b in runs]),
                "wall_max": max(b.wall for b in runs),
                "agent": median([b.agent for b in runs]),
                "overhead": median([b.overhead for b in runs]),
                "split": {s: median([b.split[s] for b in runs]) for s in SPLIT},
                "phases": {p: median([b.phases.get(p, 0.0) for b in runs]) for p in PHASES},
                "environment": sorted({b.environment for b in runs}),
            }
        )
    return rows


def _row(rows: list[dict[str, Any]], builder: str, kind: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["builder"] == builder and r["kind"] == kind), None)


def ratios(rows: list[dict[str, Any]], peer: dict[str, Any]) -> dict[str, float]:
    """Platform figure / peer figure (lower is better; 1.0 is the floor)."""
    out: dict[str, float] = {}
    warm = _row(rows, "local", "warm")
    if warm and peer.get("local"):
        out["local warm wall / peer train+check+tests"] = warm["wall"] / peer["local"]["steps"]
        out["local warm agent build / peer train+check+tests"] = warm["agent"] / peer["local"]["steps"]
        out["local warm wall / peer train"] = warm["wall"] / peer["local"]["train"]
    docker_peer = peer.get("docker")
    if docker_peer:
        same, changed = _row(rows, "docker", "warm"), _row(rows, "docker", "warm, new param")
        if same:
            out["docker warm wall / peer docker build (cached)"] = same["wall"] / docker_peer["cached"]
        if changed:
            out["docker warm new-param wall / peer docker build (no cache)"] = changed["wall"] / docker_peer["uncached"]
    return out


def goals(rows: list[dict[str, Any]], builds: list[BuildTiming]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    warm = _row(rows, "local", "warm")
    if warm:
        out.append(_goal("warm local rebuild", warm["wall"], WARM_LOCAL_GOAL, "median CLI wall, same project"))
    docker_warm = [r for r in rows if r["builder"] == "docker" and r["kind"].startswith("warm")]
    if docker_warm:
        worst = max(docker_warm, key=lambda r: r["wall"])
        out.append(_goal("warm Docker rebuild", worst["wall"], WARM_DOCKER_GOAL, f"median CLI wall, {worst['kind']}"))
    else:
        out.append({"goal": f"warm Docker rebuild < {WARM_DOCKER_GOAL:g} s", "value": None, "met": None})
    if builds:
        value = median([b.overhead for b in builds])
        out.append(_goal("platform overhead", value, OVERHEAD_GOAL, f"median of all {len(builds)} builds"))
    return out


def _goal(name: str, value: float, limit: float, basis: str) -> dict[str, Any]:
    return {"goal": f"{name} < {limit:g} s", "value": value, "limit": limit, "basis": basis, "met": value < limit}


def result(setup: dict[str, Any], builds: list[BuildTiming], peer: dict[str, Any], cli_start: float) -> dict[str, Any]:
    rows = summarize(builds)
    return {
        "setup": setup,
        "cli_start_seconds": cli_start,
        "summary": rows,
        "peer": peer,
        "ratios": ratios(rows, peer),
        "goals": goals(rows, builds),
        "builds": [{k: v for k, v in asdict(b).items() if k != "record"} | {"overhead": b.overhead} for b in builds],
    }


def render(data: dict[str, Any]) -> str:
    setup = data["setup"]
    lines = [
        f"Build benchmark: the scaffolded example (`mallard models init`), {setup['cpus']} CPUs, "
        f"load {setup['loadavg_start']} at start, {setup['loadavg_end']} at end",
        "`mallard models build --follow` wall time = the agent's build (first phase start -> last phase end)"
        " + platform overhead; medians",
        "",
    ]
    head = f"{'builder':<8} {'run':<16} {'n':>2} {'wall s':>7} {'agent s':>7} {'overhead':>8} |"
    lines.append(head + "".join(f" {PHASE_LABELS[p]:>8}" for p in PHASES) + "  environment")
    for row in data["summary"]:
        line = f"{row['builder']:<8} {row['kind']:<16} {row['runs']:>2} {row['wall']:>7.2f} {row['agent']:>7.2f}"
        line += f" {row['overhead']:>8.2f} |" + "".join(f" {row['phases'][p]:>8.2f}" for p in PHASES)
        lines.append(line + "  " + "/".join(row["environment"]))
    builds = data["builds"]
    if builds:
        split = {s: median([b["split"][s] for b in builds]) for s in SPLIT}
        lines += [
            "",
            f"overhead split, medians of all {len(builds)} builds: "
            + " + ".join(f"{s} {split[s]:.2f}" for s in SPLIT)
            + f" s  (CLI start-up alone, `mallard models build --help`: {data['cli_start_seconds']:.2f} s)",
        ]
    peer = data["peer"]
    lines += ["", "peer, same run, without the platform:"]
    if peer.get("local"):
        local = peer["local"]
        lines.append(
            f"  local  in the builder's virtualenv: train {local['train']:.2f} s, check {local['check']:.2f} s, "
            f"tests {local['tests']:.2f} s; steps {local['steps']:.2f} s"
        )
    if peer.get("docker"):
        dk = peer["docker"]
        lines.append(
            f"  docker build of the agent's Dockerfile on its dependency image: cached {dk['cached']:.2f} s, "
            f"no cache {dk['uncached']:.2f} s"
        )
    for name, value in data["ratios"].items():
        lines.append(f"  {name:<58} {value:>6.2f}x")
    lines += ["", "goals:"]
    for goal in data["goals"]:
        if goal["value"] is None:
            lines.append(f"  {goal['goal']:<28} {'-':>7}    not measured")
            continue
        verdict = "MET" if goal["met"] else "NOT MET"
        lines.append(f"  {goal['goal']:<28} {goal['value']:>7.2f} s  {verdict:<8} ({goal['basis']})")
    if setup.get("docker") != "measured":
        lines.append(f"docker: skipped ({setup['docker']})")
    return "\n".join(lines)
