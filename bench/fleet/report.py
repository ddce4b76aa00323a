"""Percentiles, ratios against the peer, the printed table and the goal line."""

from __future__ import annotations

import math
from typing import Any

GOAL_AGENTS = 2000
GOAL_P99_MS = 100.0


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def ratio(ours: float | None, floor: float | None) -> float | None:
    if ours is None or floor is None or floor <= 0:
        return None
    return ours / floor


def ratios(level: dict[str, Any]) -> dict[str, float | None]:
    """Our figures divided by the peer's (above 1 = slower, bigger or, for throughput, faster)."""
    ours, peer = level["gateway"], level["peer"]
    return {
        "rtt_p50": ratio(ours["round_trip_ms"]["p50"], peer["round_trip_ms"]["p50"]),
        "rtt_p99": ratio(ours["round_trip_ms"]["p99"], peer["round_trip_ms"]["p99"]),
        "kib_per_agent": ratio(ours["kib_per_agent"], peer["kib_per_agent"]),
        "heartbeats_per_second": ratio(ours["heartbeats"]["per_second"], peer["heartbeats"]["per_second"]),
        "cpu_per_heartbeat": ratio(
            ours["heartbeats"]["server_cpu_us_per_heartbeat"], peer["heartbeats"]["server_cpu_us_per_heartbeat"]
        ),
    }


def goal(levels: list[dict[str, Any]]) -> dict[str, Any]:
    text = f"{GOAL_AGENTS:,} concurrent agents on one gateway process, command round trip p99 < {GOAL_P99_MS:g} ms"
    level = next((lv for lv in levels if lv["agents"] == GOAL_AGENTS), None)
    if level is None:
        return {"goal": text, "met": None, "why": f"this run did not include {GOAL_AGENTS:,} agents"}
    ours = level["gateway"]
    p99 = ours["round_trip_ms"]["p99"]
    connected_ok = ours["connected"] == GOAL_AGENTS and ours["lost_streams"] == 0
    met = connected_ok and p99 is not None and p99 < GOAL_P99_MS and ours["commands_unacked"] == 0
    why = (
        f"{ours['connected']:,}/{GOAL_AGENTS:,} connected, {ours['lost_streams']} streams lost, "
        f"p99 {_ms(p99)} ms, {ours['commands_unacked']} commands unacked"
    )
    return {"goal": text, "met": met, "why": why}


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render(result: dict[str, Any]) -> str:
    setup = result["setup"]
    lines = [
        f"Agent fleet benchmark: {setup['cpus']} CPUs, database {setup['database']}, "
        f"load average {setup['loadavg_start']} at the start, {setup['loadavg_end']} at the end",
        f"heartbeat every {setup['heartbeat_ms']} ms, command poll every {setup['command_poll_ms']} ms, "
        f"{setup['commands']} commands at {setup['command_rate']:g}/s per size, "
        f"{setup['client_procs']} simulated-agent process(es)",
        "agents were provisioned, not enrolled: certificates signed with the control-plane CA and "
        "Agent/AgentCertificate rows bulk-inserted",
        "",
        f"{'agents':>6}  {'server':<8}{'connected':>11}{'connect s':>10}{'KiB/agent':>10}{'idle CPU':>9}"
        f"{'RTT p50':>9}{'RTT p99':>9}{'RTT max':>9}{'hb/s':>9}{'µs/hb':>7}",
    ]
    for level in result["levels"]:
        n = level["agents"]
        for label, key in (("gateway", "gateway"), ("peer", "peer")):
            row = level[key]
            rtt = row["round_trip_ms"]
            hb = row["heartbeats"]
            lines.append(
                f"{n if key == 'gateway' else '':>6}  {label:<8}{row['connected']:>6,}/{n:<4,}"
                f"{row['connect_seconds']:>10.1f}"
                f"{row['kib_per_agent']:>10.1f}{row['idle_cpu_pct']:>8.0f}%"
                f"{_ms(rtt['p50']):>9}{_ms(rtt['p99']):>9}{_ms(rtt['max']):>9}"
                f"{_num(hb['per_second']):>9}{_num(hb['server_cpu_us_per_heartbeat']):>7}"
            )
        r = level["ratios"]
        lines.append(
            f"{'':>6}  {'ratio':<8}{'':>21}{_x(r['kib_per_agent']):>10}{'':>9}"
            f"{_x(r['rtt_p50']):>9}{_x(r['rtt_p99']):>9}{'':>9}{_x(r['heartbeats_per_second']):>9}"
            f"{_x(r['cpu_per_heartbeat']):>7}"
        )
    lines += [
        "",
        "gateway command round trip, split: p50 / p99 ms after the command row was created "
        "(last column: after its insert committed; unacked: no ack by 30 s)",
        f"{'agents':>6}{'insert committed':>18}{'command at agent':>18}{'ack recorded':>18}{'receipt at agent':>18}"
        f"{'ack after commit':>18}{'unacked':>9}",
    ]
    for level in result["levels"]:
        g = level["gateway"]
        cells = "".join(
            f"{_ms(g[key]['p50']) + ' / ' + _ms(g[key]['p99']):>18}"
            for key in ("insert_ms", "to_agent_ms", "round_trip_ms", "receipt_at_agent_ms", "round_trip_from_commit_ms")
        )
        lines.append(f"{level['agents']:>6}{cells}{g['commands_unacked']:>9}")
    outcome = result["goal"]
    verdict = {True: "MET", False: "NOT MET", None: "NOT EVALUATED"}[outcome["met"]]
    lines += [
        "",
        f"goal: {outcome['goal']}: {verdict} ({outcome['why']})",
        "RTT: gateway = command row created -> ack recorded (DB timestamps); peer = ping -> pong at the client.",
        "hb/s: heartbeats the server consumed per second in a burst (client and server share the CPUs); "
        "µs/hb: server CPU per heartbeat above its idle CPU.",
        "Method and caveats: bench/README.md.",
    ]
    return "\n".join(lines)
