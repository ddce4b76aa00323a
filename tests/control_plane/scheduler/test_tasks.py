"""The scheduler's tasks against a real database (SQLite and PostgreSQL), run in-process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from celery.signals import task_retry
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select

from control_plane.db import session_scope
from control_plane.models import Agent, AgentCommand, AuditLog, JoinToken
from control_plane.scheduler import tasks
from control_plane.scheduler.broker import processed_dir
from control_plane.settings import Settings, get_settings
from tests.control_plane.scheduler import factories as make
from tests.control_plane.scheduler.conftest import RETENTION_SECONDS


def audit_rows(url: str, action: str) -> list[AuditLog]:
    with session_scope(url) as session:
        return list(session.exec(select(AuditLog).where(col(AuditLog.action) == action).order_by(col(AuditLog.id))))


def test_mark_offline_agents_takes_only_stale_online_agents_offline(scheduler_settings: Settings) -> None:
    url = scheduler_settings.effective_database_url
    tenant = make.tenant(url)
    stale = make.agent(url, tenant, last_seen_at=make.ago(60))
    fresh = make.agent(url, tenant, last_seen_at=make.ago(0))
    already_offline = make.agent(url, tenant, status="offline", last_seen_at=make.ago(3600))

    assert tasks.mark_offline_agents.run() == [stale]

    with session_scope(url) as session:
        agents = {a.id: (a.status, a.connected) for a in session.exec(select(Agent))}
    assert agents == {stale: ("offline", False), fresh: ("online", True), already_offline: ("offline", False)}
    [row] = audit_rows(url, "agent.offline")
    assert (row.tenant_id, row.actor, row.target_type, row.target_id) == (tenant, "system:scheduler", "agent", stale)

    # A redelivered or overlapping run changes nothing and audits nothing twice.
    assert tasks.mark_offline_agents.run() == []
    assert len(audit_rows(url, "agent.offline")) == 1


def test_expire_commands_expires_only_overdue_open_commands(scheduler_settings: Settings) -> None:
    url = scheduler_settings.effective_database_url
    tenant = make.tenant(url)
    agent = make.agent(url, tenant, last_seen_at=make.ago(0))
    overdue = make.command(url, agent, tenant, expires_at=make.ago(1))
    overdue_delivered = make.command(url, agent, tenant, expires_at=make.ago(1), state="delivered")
    future = make.command(url, agent, tenant, expires_at=make.ago(-600))
    finished = make.command(url, agent, tenant, expires_at=make.ago(1), state="succeeded")

    assert sorted(tasks.expire_commands.run()) == sorted([overdue, overdue_delivered])

    with session_scope(url) as session:
        states = {c.id: c.state for c in session.exec(select(AgentCommand))}
    assert states == {overdue: "expired", overdue_delivered: "expired", future: "pending", finished: "succeeded"}
    assert tasks.expire_commands.run() == []


def test_purge_join_tokens_deletes_only_tokens_finished_before_the_retention(scheduler_settings: Settings) -> None:
    url = scheduler_settings.effective_database_url
    old = make.ago(RETENTION_SECONDS + 60)
    recent = make.ago(RETENTION_SECONDS - 60)
    future = make.ago(-600)
    first, second = make.tenant(url), make.tenant(url)
    purged = {
        make.join_token(url, first, expires_at=old),
        make.join_token(url, first, expires_at=future, redeemed_at=old),
        make.join_token(url, second, expires_at=future, revoked_at=old),
    }
    kept = {
        make.join_token(url, first, expires_at=recent),
        make.join_token(url, first, expires_at=future),
        make.join_token(url, second, expires_at=future, redeemed_at=recent),
    }

    assert tasks.purge_join_tokens.run() == 3

    with session_scope(url) as session:
        assert set(session.exec(select(JoinToken.id))) == kept
    rows = audit_rows(url, "join_token.purge")
    assert {r.tenant_id for r in rows} == {first, second}
    assert all(r.actor == "system:scheduler" for r in rows)
    assert {i for r in rows for i in json.loads(r.details_json)["join_token_ids"]} == purged

    assert tasks.purge_join_tokens.run() == 0
    assert len(audit_rows(url, "join_token.purge")) == 2


def test_purge_join_tokens_commits_and_audits_in_batches(
    scheduler_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = scheduler_settings.effective_database_url
    monkeypatch.setattr(tasks, "PURGE_BATCH_SIZE", 2)
    tenant = make.tenant(url)
    for _ in range(5):
        make.join_token(url, tenant, expires_at=make.ago(RETENTION_SECONDS + 60))

    assert tasks.purge_join_tokens.run() == 5

    counts = [json.loads(r.details_json)["count"] for r in audit_rows(url, "join_token.purge")]
    assert counts == [2, 2, 1]


def test_a_database_error_is_retried_with_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A directory where the SQLite file should be: every connection attempt fails.
    (tmp_path / "cp.db").mkdir()
    monkeypatch.setenv("MALLARD_DATABASE_URL", f"sqlite:///{tmp_path / 'cp.db'}")
    monkeypatch.setenv("MALLARD_CP_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    retries: list[BaseException] = []

    def on_retry(reason: BaseException, **_: object) -> None:
        retries.append(reason)

    task_retry.connect(on_retry, weak=False)
    try:
        result = tasks.expire_commands.apply()  # eager: retries run inline, without the countdown
    finally:
        task_retry.disconnect(on_retry)
        get_settings.cache_clear()

    assert result.failed()
    assert isinstance(result.result, OperationalError)
    assert len(retries) == tasks.TASK_OPTIONS["max_retries"]
    assert all(isinstance(getattr(r, "exc", None), OperationalError) for r in retries)


def test_prune_broker_files_deletes_only_old_processed_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLARD_CP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MALLARD_BROKER_URL", raising=False)
    get_settings.cache_clear()
    try:
        processed = processed_dir(get_settings())
        processed.mkdir(parents=True)
        old, fresh = processed / "1_a.mallard.scheduler.msg", processed / "2_b.mallard.scheduler.msg"
        old.write_text("{}")
        fresh.write_text("{}")
        an_hour_ago = time.time() - tasks.BROKER_FILE_RETENTION_SECONDS - 60
        os.utime(old, (an_hour_ago, an_hour_ago))

        assert tasks.prune_broker_files.run() == 1
        assert not old.exists() and fresh.exists()

        monkeypatch.setenv("MALLARD_BROKER_URL", "redis://127.0.0.1:6390/0")
        get_settings.cache_clear()
        os.utime(fresh, (an_hour_ago, an_hour_ago))
        assert tasks.prune_broker_files.run() == 0, "with Redis the folder is not the scheduler's to prune"
        assert fresh.exists()
    finally:
        get_settings.cache_clear()
