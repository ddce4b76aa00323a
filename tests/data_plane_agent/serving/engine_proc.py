"""`python -m tests.data_plane_agent.serving.engine_proc HOME STORE SPEC_JSON`: an engine in its own
process (as in the agent), applying SPEC_JSON, printing `ready <replica pid>` once RUNNING, then
serving until killed."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from data_plane_agent.storage import LocalObjectStore
from tests.data_plane_agent.serving.helpers import state_of, toy_engine, until


async def main(home: Path, store_root: Path, spec_json: str) -> None:
    engine, _ = toy_engine(home, LocalObjectStore(store_root), None)
    await engine.start()
    spec = json.loads(spec_json)
    await engine.apply(spec)
    await until(lambda: state_of(engine, spec["deployment_id"]) == "RUNNING")
    print("ready", engine._deployments[spec["deployment_id"]].replicas[0].pid, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
