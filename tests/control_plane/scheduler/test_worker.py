"""A real worker with embedded beat, as deployed: Redis broker, then the embedded one.

Each test starts the worker as a subprocess in its own session (process group), waits on a
row the beat schedule should change, then sends SIGTERM and checks, through /proc, that the
worker and its beat process both exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from sqlmodel import col, select

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCommand, AuditLog
from control_plane.scheduler.app import QUEUE, make_celery
from control_plane.settings import Settings
from tests.control_plane.scheduler import factories as make
from tests.helpers.servers import redis_server, repo_root, wait_for

pytestmark = pytest.mark.slow

CELERY_WORKER = [
    sys.executable,
    "-m",
    "celery",
    "-A",
    "control_plane.scheduler.app",
    "worker",
    "-B",
    "--pool",
    "solo",
    "--loglevel",
    "INFO",
]
SCHEDULER_MAIN = [sys.executable, "-m", "control_plane.scheduler"]


def worker_env(home: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLARD_")}
    env.update(
        PYTHONPATH=str(repo_root()),
        MALLARD_CP_HOME=str(home),
        MALLARD_DATABASE_URL=database_url,
        MALLARD_SCHEDULER_INTERVAL_SECONDS="0.5",
        MALLARD_HEARTBEAT_INTERVAL_MS="100",
    )
    env.update(extra)
    return env


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc, self.log = proc, log

    def wait_for(self, predicate: Callable[[], object], what: str) -> None:
        try:
            wait_for(predicate, timeout=20, interval=0.1, what=what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{self.log.read_text()[-4000:]}") from None

    def stop(self) -> None:
        """SIGTERM: a warm shutdown that must end the worker and its beat process."""
        assert len(running_members(self.proc.pid)) == 2, "expected the worker and its beat process"
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=15) == 0, self.log.read_text()[-4000:]
        self.wait_for(lambda: not running_members(self.proc.pid), "the beat process to exit with the worker")


def running_members(pgid: int) -> list[int]:
    """Processes of the worker's group that still run (zombies wait for their parent or init to reap them)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:  # exited while we looked
            continue
        if int(pgrp) == pgid and state not in ("Z", "X"):
            pids.append(int(stat.parent.name))
    return pids


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[Worker]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=repo_root(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield Worker(proc, log)
    finally:
        if running_members(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait(10)


def stale_online_agent(url: str) -> str:
    return make.agent(url, make.tenant(url), last_seen_at=make.ago(3600))


def went_offline(url: str, agent_id: str) -> bool:
    with session_scope(url) as session:
        agent = session.get(Agent, agent_id)
        offline = agent is not None and agent.status == "offline" and not agent.connected
        audited = session.exec(
            select(AuditLog).where(col(AuditLog.action) == "agent.offline").where(col(AuditLog.target_id) == agent_id)
        ).first()
        return offline and audited is not None


@pytest.mark.redis
def test_worker_with_beat_on_redis_marks_a_silent_agent_offline(sqlite_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    agent_id = stale_online_agent(sqlite_url)
    with (
        redis_server() as broker,
        running(
            CELERY_WORKER, worker_env(home, sqlite_url, MALLARD_BROKER_URL=broker), tmp_path / "worker.log"
        ) as worker,
    ):
        worker.wait_for(lambda: went_offline(sqlite_url, agent_id), f"agent {agent_id} to go offline")
        worker.stop()
        # The messages went through this Redis: the worker declared its queue there.
        assert redis.Redis.from_url(broker).exists(f"_kombu.binding.{QUEUE}")
    assert not (home / "broker").exists(), "the embedded transport must not have been used"


def test_scheduler_main_on_the_embedded_broker_marks_a_silent_agent_offline(sqlite_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    agent_id = stale_online_agent(sqlite_url)
    with running(SCHEDULER_MAIN, worker_env(home, sqlite_url), tmp_path / "worker.log") as worker:
        worker.wait_for(lambda: went_offline(sqlite_url, agent_id), f"agent {agent_id} to go offline")
        worker.stop()
    assert list((home / "broker" / "processed").glob(f"*.{QUEUE}.msg")), "beat's messages went through the folder"


def test_other_processes_can_enqueue_on_the_embedded_broker(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    tenant = make.tenant(sqlite_url)
    agent_id = make.agent(sqlite_url, tenant, last_seen_at=make.ago(0))
    command_id = make.command(sqlite_url, agent_id, tenant, expires_at=make.ago(1))
    # Beat stays quiet (first run in an hour), so only the task sent from here can expire it.
    env = worker_env(home, sqlite_url, MALLARD_SCHEDULER_INTERVAL_SECONDS="3600")
    with running(SCHEDULER_MAIN, env, tmp_path / "worker.log") as worker:
        monkeypatch.setenv("MALLARD_CP_HOME", str(home))
        monkeypatch.delenv("MALLARD_BROKER_URL", raising=False)
        make_celery(Settings()).send_task("control_plane.scheduler.tasks.expire_commands")

        def expired() -> bool:
            with session_scope(sqlite_url) as session:
                command = session.get(AgentCommand, command_id)
                return command is not None and command.state == "expired"

        worker.wait_for(expired, f"command {command_id} to expire")
