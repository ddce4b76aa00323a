"""Argument parsing and exit codes for `python -m mallard.runtime`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mallard.runtime.failures import RuntimeFailure


def main(argv: list[str] | None = None) -> int:
    """Run one entry point; returns the process exit code (0 ok, 1 model failure, 2 invalid input)."""
    parser = argparse.ArgumentParser(prog="python -m mallard.runtime", description="Mallard build-time entry points.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a project's model and save it")
    train.add_argument("--project", required=True, type=Path, help="the unpacked model project")
    train.add_argument("--output", required=True, type=Path, help="where model/ and result.json are written")
    train.add_argument("--params-json", type=Path, help="a JSON object of params overriding mallard.yaml's")
    check = commands.add_parser("check", help="load a saved model and predict on an example from its schema")
    check.add_argument("--artifact", required=True, type=Path, help="a saved model directory (OUT/model)")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            from mallard.runtime.train import train_project

            train_project(args.project, args.output, params_json=args.params_json)
        else:
            from mallard.runtime.check import check_artifact

            check_artifact(args.artifact)
    except RuntimeFailure as failure:
        sys.stdout.flush()
        print(failure.report(), file=sys.stderr, flush=True)
        return failure.exit_code
    return 0
