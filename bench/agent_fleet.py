"""Agent fleet benchmark: N simulated agents (real mTLS, one stream each) against ONE gateway process.

For each fleet size it reports connected agents, gateway memory per agent, command round trip
p50/p99/max and heartbeats consumed per second, next to the same figures for a bare grpc.aio
echo server (the peer) measured in the same run. `make bench`, or from the repository root:

    python bench/agent_fleet.py [--agents 100,500,1000,2000] [--quick] [--json]

Method and caveats: bench/README.md. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repository root

from bench.fleet.measure import Plan, measure_gateway, measure_peer
from bench.fleet.processes import Children, raise_fd_limit
from bench.fleet.provision import provision_fleet, write_fleet_file
from bench.fleet.report import goal, ratios, render
from bench.runlog import log as _log
from bench.runlog import run_main

DEFAULT_SIZES = "100,500,1000,2000"
QUICK_SIZES = "50,200"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--agents", default=DEFAULT_SIZES, help=f"fleet sizes, comma-separated (default {DEFAULT_SIZES})"
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke run: sizes {QUICK_SIZES}, fewer commands")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument(
        "--database-url",
        help="control-plane database, e.g. PostgreSQL (default: a SQLite file in a temp dir); use a scratch "
        "database: the run's tenant, agents, commands and audit rows stay in it",
    )
    parser.add_argument("--heartbeat-ms", type=int, default=10_000, help="agent heartbeat interval (default 10000)")
    parser.add_argument(
        "--command-poll-ms",
        type=int,
        help="MALLARD_COMMAND_POLL_INTERVAL_MS for the gateway (default: the gateway's own, 50)",
    )
    parser.add_argument("--commands", type=int, default=300, help="commands (and peer pings) per fleet size")
    parser.add_argument("--command-rate", type=float, default=40.0, help="commands per second")
    parser.add_argument("--burst", type=int, default=100_000, help="heartbeats in the throughput burst, all agents")
    parser.add_argument("--client-procs", type=int, default=1, help="simulated-agent processes (default 1)")
    parser.add_argument("--connect-concurrency", type=int, default=32, help="TLS handshakes in flight at once")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to settle before memory/CPU readings")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, database)")
    args = parser.parse_args(argv)
    if args.quick:
        args.agents = QUICK_SIZES if args.agents == DEFAULT_SIZES else args.agents
        args.commands, args.burst, args.settle = min(args.commands, 100), min(args.burst, 20_000), min(args.settle, 2.0)
    try:
        args.sizes = sorted({int(n) for n in args.agents.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--agents must be comma-separated integers, got {args.agents!r}")
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--agents needs at least one fleet size of 1 or more")
    if not 1 <= args.client_procs <= min(args.sizes):
        parser.error(f"--client-procs must be between 1 and the smallest fleet size ({min(args.sizes)})")
    if args.command_rate <= 0 or args.commands < 1 or args.burst < 1:
        parser.error("--commands, --command-rate and --burst must be positive")
    return args


def run(args: argparse.Namespace, work: Path, children: Children) -> dict[str, Any]:
    from control_plane.gateway.server import prepare
    from control_plane.settings import Settings

    home = work / "cp"
    database_url = args.database_url or f"sqlite:///{home / 'control-plane.db'}"
    prepare(Settings(MALLARD_CP_HOME=home, database_url=database_url))  # type: ignore[call-arg]
    largest = max(args.sizes)
    _log(f"provisioning {largest} agents (certificates signed directly, rows bulk-inserted)")
    started = time.monotonic()
    tenant_id, fleet = provision_fleet(database_url, home / "pki", largest)
    fleet_file = work / "fleet.json"
    write_fleet_file(fleet_file, fleet)
    provision_seconds = time.monotonic() - started
    plan = Plan(
        home=home,
        database_url=database_url,
        fleet_file=fleet_file,
        heartbeat_ms=args.heartbeat_ms,
        command_poll_ms=args.command_poll_ms,
        commands=args.commands,
        command_rate=args.command_rate,
        burst_total=args.burst,
        client_procs=args.client_procs,
        connect_concurrency=args.connect_concurrency,
        settle_seconds=args.settle,
    )
    if args.database_url:
        # The audit log is append-only, so the run's rows stay; hence "use a scratch database".
        _log(f"the run's agents and commands are in tenant {tenant_id} of the --database-url database")
    levels = []
    for n in args.sizes:
        _log(f"{n} agents: gateway")
        ours = measure_gateway(children, plan, n)
        _log(f"{n} agents: peer (grpc.aio echo)")
        peer = measure_peer(children, plan, n)
        level = {"agents": n, "gateway": ours, "peer": peer}
        level["ratios"] = ratios(level)
        levels.append(level)
    return {
        "setup": {
            "cpus": os.cpu_count(),
            "database": "PostgreSQL (--database-url)"
            if args.database_url and "postgres" in args.database_url
            else "given by --database-url"
            if args.database_url
            else "SQLite file in a temp dir",
            "heartbeat_ms": args.heartbeat_ms,
            "command_poll_ms": args.command_poll_ms or Settings().command_poll_interval_ms,
            "commands": args.commands,
            "command_rate": args.command_rate,
            "heartbeat_burst": args.burst,
            "client_procs": args.client_procs,
            "provision_seconds": provision_seconds,
            "tenant_id": tenant_id,
            "provisioning": "direct: CA-signed certificates and bulk-inserted Agent/AgentCertificate rows",
        },
        "levels": levels,
        "goal": goal(levels),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    return run_main(args, "mallard-bench-", lambda work, children: run(args, work, children), render)


if __name__ == "__main__":
    sys.exit(main())
