"""Build benchmark: how long `mallard models build --follow` takes for the scaffolded example
(`mallard models init`), cold and warm, with the local and the Docker builder, and how much of
that is the platform rather than the build (validate, pack, upload, queue, dispatch, events).

Peer, measured in the same run: the same steps straight on the host, without the platform
(`python -m mallard.runtime train`, `check` and the project's tests in the virtualenv the local
builder prepared; a plain `docker build` of the Dockerfile the Docker builder generates).
`make bench`, or from the repository root:

    python bench/builds.py [--quick] [--repeats 3] [--json]

Method and caveats: bench/README.md. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repository root

from bench.build_timing.engine import BASE_IMAGE, DockerRun, engine_status
from bench.build_timing.report import render, result
from bench.build_timing.runs import (
    BuildTiming,
    cli_build,
    environment_reused,
    median,
    peer_local,
    ready_venv,
    run_command,
)
from bench.build_timing.stack import Agent, Stack
from bench.fleet.processes import Children, child_env
from bench.runlog import log as _log
from bench.runlog import run_main

MODEL = "bench-model"
COLD = (
    "a fresh agent home: no virtualenv, wheelhouse, SDK wheel or pip cache; Docker: a base image "
    f"new to the engine (a label-only child of {BASE_IMAGE}), so no cached layer matches. pip still "
    "installs from this host's configured indexes / find-links (local directories on this machine)."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="local builder only, 2 warm runs")
    parser.add_argument("--repeats", type=int, default=3, help="warm builds (and peer runs) of each kind (default 3)")
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker builder")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, agent homes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.no_docker = min(args.repeats, 2), True
    if args.repeats < 1:
        parser.error("--repeats must be 1 or more")
    return args


def _build(stack: Stack, agent: Agent, project: Path, logs: Path, **kwargs: Any) -> BuildTiming:
    timing = cli_build(project=project, model=MODEL, env=stack.cli_env(agent), logs=logs, **kwargs)
    timing.environment = environment_reused(agent.home, timing.build_id)
    _log(
        f"  {timing.builder} {timing.kind}: wall {timing.wall:.2f} s, agent {timing.agent:.2f} s "
        f"({timing.environment} environment); overhead " + ", ".join(f"{k} {v:.2f}" for k, v in timing.split.items())
    )
    return timing


def measure_local(stack: Stack, project: Path, work: Path, repeats: int) -> tuple[list[BuildTiming], dict[str, float]]:
    _log("local builder: a new agent with an empty home")
    agent = stack.start_agent("agent-local")
    logs = work / "logs"
    builds = [_build(stack, agent, project, logs, builder="local", kind="cold", params={})]
    builds += [_build(stack, agent, project, logs, builder="local", kind="warm", params={}) for _ in range(repeats)]
    _log("peer: train, check and tests in the builder's virtualenv, without the platform")
    venv = ready_venv(agent.home)
    runs = [peer_local(venv, project, work / "peer-local", logs) for _ in range(repeats)]
    agent.child.stop()
    return builds, {k: median([r[k] for r in runs]) for k in runs[0]}


def measure_docker(
    stack: Stack, project: Path, work: Path, repeats: int, docker: DockerRun
) -> tuple[list[BuildTiming], dict[str, float]]:
    _log(f"docker builder: a new agent with an empty home, base image {docker.make_base()}")
    agent = stack.start_agent("agent-docker", {"MALLARD_AGENT_DOCKER_BASE_IMAGE": docker.base_tag})
    logs = work / "logs"
    builds = [_build(stack, agent, project, logs, builder="docker", kind="cold", params={})]
    builds += [_build(stack, agent, project, logs, builder="docker", kind="warm", params={}) for _ in range(repeats)]
    for index in range(repeats):  # a changed param: a new params.json layer, so training runs again
        params = {"seed": str(100 + index)}
        builds.append(_build(stack, agent, project, logs, builder="docker", kind="warm, new param", params=params))
    deps = [t for i in docker.images() for t in i.get("RepoTags") or [] if t.startswith("mallard-deps:")]
    if not deps:
        raise RuntimeError("the Docker builder left no mallard-deps image for this run")
    _log(f"peer: docker build of the agent's Dockerfile on {deps[0]}, without the platform")
    uncached = [docker.peer(deps[0], project, work / "peer-docker", cached=False) for _ in range(repeats)]
    cached = [docker.peer(deps[0], project, work / "peer-docker", cached=True) for _ in range(repeats)]
    agent.child.stop()
    return builds, {"cached": median(cached), "uncached": median(uncached)}


def run(args: argparse.Namespace, work: Path, children: Children, docker: DockerRun) -> dict[str, Any]:
    logs = work / "logs"
    logs.mkdir()
    stack = Stack(work / "control-plane", children)
    _log("starting the control-plane API and gateway")
    stack.start()
    stack.register_model("bench", MODEL)
    project = work / "example"
    cli = [sys.executable, "-m", "mallard"]
    run_command(
        [*cli, "models", "init", str(project), "--name", MODEL], env=child_env({}), cwd=work, log=logs / "cli.log"
    )
    help_argv = [*cli, "models", "build", "--help"]
    cli_start = median([run_command(help_argv, env=child_env({}), cwd=work, log=logs / "cli.log")[0] for _ in range(3)])
    why_not = "--quick / --no-docker" if args.no_docker else engine_status()
    builds, local_peer = measure_local(stack, project, work, args.repeats)
    peer: dict[str, Any] = {"local": local_peer}
    if not why_not:
        docker_builds, peer["docker"] = measure_docker(stack, project, work, args.repeats, docker)
        builds += docker_builds
    setup = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "repeats": args.repeats,
        "cold": COLD,
        "docker": why_not or "measured",
        "stack": "control-plane API + gateway (SQLite), one agent per builder, as `mallard dev up` runs them",
    }
    return result(setup, builds, peer, cli_start)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    docker = DockerRun(uuid.uuid4().hex[:12])

    def cleanup() -> None:
        if not args.no_docker and not engine_status():
            for leftover in docker.cleanup():
                _log(f"left behind: {leftover}")

    return run_main(
        args, "mallard-bench-builds-", lambda work, children: run(args, work, children, docker), render, cleanup=cleanup
    )


if __name__ == "__main__":
    sys.exit(main())
