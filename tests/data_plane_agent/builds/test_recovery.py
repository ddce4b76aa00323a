"""An agent killed (-9) mid-build: after the restart the running build is reported FAILED, what it
left running is stopped, and builds that were only queued run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from data_plane_agent.builds.state import BuildTable
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import LocalObjectStore, build_log_key
from shared import builds as contract
from tests.data_plane_agent.builds.conftest import ManagerFactory
from tests.data_plane_agent.builds.helpers import ScriptedBuilder, events, make_context, pid_alive, simple_project
from tests.helpers.servers import repo_root, wait_for

CRASHING_AGENT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from data_plane_agent.builds import BuildManager
    from data_plane_agent.link.outbox import Outbox
    from data_plane_agent.storage import LocalObjectStore
    from tests.data_plane_agent.builds.helpers import TENANT, ScriptedBuilder, spec

    home, store_root, digest = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    sleeper = "import time; print('training', flush=True); time.sleep(120)"
    manager = BuildManager(
        home=home, store=LocalObjectStore(store_root), outbox=Outbox(home / "state.db"), tenant_id=TENANT,
        builders={"local": ScriptedBuilder({"train": sleeper})}, max_concurrent=1, log_sync_interval=0.2,
    )
    manager.start()
    manager.submit(spec("bld_crash", digest))
    manager.submit(spec("bld_after", digest))
    time.sleep(600)
    """
)


def test_a_build_running_when_the_agent_died_is_failed_at_restart(
    tmp_path: Path, store: LocalObjectStore, outbox: Outbox, make_manager: ManagerFactory
) -> None:
    digest = make_context(store, simple_project())
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    agent = subprocess.Popen(
        [sys.executable, "-c", CRASHING_AGENT, str(home), str(store.root), digest], env=env, cwd=repo_root()
    )
    try:
        table = BuildTable(home / "builds" / "builds.db")

        def training() -> int | None:
            record = table.get("bld_crash")
            return record.pid if record and record.phase == "train" else None

        step_pid = wait_for(training, timeout=30, what="the build to reach train")
        assert isinstance(step_pid, int)
        wait_for(lambda: b"training" in (home / "builds" / "logs" / "bld_crash.log").read_bytes(), timeout=10)
        table.close()
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
    assert pid_alive(step_pid), "the step runs in its own session, so it outlives the agent"

    builder = ScriptedBuilder()
    restarted = make_manager({"local": builder})  # start() runs the recovery
    record = restarted.get("bld_crash")
    assert record is not None and record.status == "FAILED" and record.failed_phase == "train"
    assert record.error_summary is not None and "agent restarted during the build" in record.error_summary
    assert not pid_alive(step_pid), "the orphaned training process is stopped"
    assert builder.recovered == ["bld_crash"]
    crash_events = events(outbox, "bld_crash")
    assert crash_events[-2] == (
        contract.PHASE_EVENT,
        {"build_id": "bld_crash", "phase": "train", "state": "failed", "at_unix_ms": crash_events[-2][1]["at_unix_ms"]},
    )
    assert crash_events[-1][1]["status"] == "FAILED" and crash_events[-1][1]["failed_phase"] == "train"
    with store.open_read(build_log_key("bld_crash")) as handle:
        text = handle.read().decode()
    assert "training" in text and "agent restarted during the build" in text
    assert not (home / "builds" / "work" / "bld_crash").exists()

    deadline = time.monotonic() + 30
    while restarted.get("bld_after").status != "SUCCEEDED" and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.05)
    assert restarted.get("bld_after").status == "SUCCEEDED"  # type: ignore[union-attr]


def test_recovery_leaves_a_recycled_pid_alone(tmp_path: Path, make_manager: ManagerFactory) -> None:
    # A process that is not the build's (no MALLARD_BUILD_ID in its environment) in the recorded group.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        table = BuildTable(tmp_path / "home" / "builds" / "builds.db")
        table.insert(build_id="bld_old", spec={"builder": "local"}, builder="local", status="RUNNING")
        table.phase_started("bld_old", "test", 1)
        table.update("bld_old", pid=bystander.pid, started_at_ms=1)
        table.close()
        manager = make_manager({"local": ScriptedBuilder()})
        assert manager.get("bld_old").status == "FAILED"  # type: ignore[union-attr]
        assert pid_alive(bystander.pid)
    finally:
        bystander.kill()
        bystander.wait()
