"""deployment.apply / deployment.delete as the agent's command handlers run them."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from data_plane_agent.commands.handlers import (
    CAPABILITIES,
    CommandContext,
    CommandFailed,
    attach_serving_engine,
    run_command,
)
from data_plane_agent.storage import LocalObjectStore
from shared.serving import APPLY_COMMAND, DELETE_COMMAND
from tests.data_plane_agent.serving.helpers import apply_spec, state_of, toy_artifact, toy_engine, until, variation


async def test_apply_and_delete_commands_drive_the_attached_engine(tmp_path: Path, store: LocalObjectStore) -> None:
    home = tmp_path / "home"
    ctx = CommandContext("agt_1", "ten_1", home, "http://127.0.0.1:1", time.monotonic())
    with pytest.raises(CommandFailed, match="serving engine is not started"):
        await run_command(ctx, APPLY_COMMAND, {})
    assert "serving.local" in CAPABILITIES

    digest = toy_artifact(store, tmp_path, "bld_a")
    engine, _ = toy_engine(home, store, None)
    await engine.start()
    attach_serving_engine(home, engine)
    try:
        with pytest.raises(CommandFailed, match="variations must be a non-empty list"):
            await run_command(ctx, APPLY_COMMAND, {"deployment_id": "dep_1", "kind": "realtime", "variations": []})
        spec = apply_spec("dep_1", [variation("default", "bld_a", digest)])
        result = await run_command(ctx, APPLY_COMMAND, dict(spec))
        assert result["applied"] is True and result["revision"] == 1
        await until(lambda: state_of(engine, "dep_1") == "RUNNING")
        outcome = await engine.predict("toy", pa.table({"x": [1.0]}), request_id="r")
        assert outcome.outputs.column("y").to_pylist() == [2.0]

        with pytest.raises(CommandFailed, match="deployment_id is required"):
            await run_command(ctx, DELETE_COMMAND, {})
        assert (await run_command(ctx, DELETE_COMMAND, {"deployment_id": "dep_1"}))["deleted"] is True
        assert engine.deployments() == []
    finally:
        attach_serving_engine(home, None)
        await engine.shutdown(5)
