"""How `make_celery` wires the broker, the worker's habits and the beat schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.scheduler import tasks
from control_plane.scheduler.app import make_celery
from control_plane.settings import Settings

SCHEDULED = {
    "control_plane.scheduler.tasks.mark_offline_agents",
    "control_plane.scheduler.tasks.expire_commands",
    "control_plane.scheduler.tasks.purge_join_tokens",
    "control_plane.scheduler.tasks.fail_expired_build_leases",
}


def settings_for(monkeypatch: pytest.MonkeyPatch, home: Path, broker_url: str | None = None) -> Settings:
    monkeypatch.setenv("MALLARD_CP_HOME", str(home))
    monkeypatch.setenv("MALLARD_SCHEDULER_INTERVAL_SECONDS", "2.5")
    if broker_url:
        monkeypatch.setenv("MALLARD_BROKER_URL", broker_url)
    else:
        monkeypatch.delenv("MALLARD_BROKER_URL", raising=False)
    return Settings()


def test_embedded_broker_lives_in_folders_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    app = make_celery(settings_for(monkeypatch, home))
    assert not home.exists(), "the configuration is lazy: building the app touches no disk"

    options = app.conf.broker_transport_options
    assert app.conf.broker_url.startswith("filesystem://")
    assert options["data_folder_in"] == options["data_folder_out"] == str(home / "broker" / "messages")
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        assert Path(options[key]).is_dir() and Path(options[key]).is_relative_to(home / "broker")
    schedule = app.conf.beat_schedule
    assert {entry["task"] for entry in schedule.values()} == SCHEDULED | {tasks.prune_broker_files.name}
    assert app.conf.beat_schedule_filename == str(home / "celerybeat-schedule")


def test_redis_broker_when_configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    app = make_celery(settings_for(monkeypatch, home, "redis://127.0.0.1:6390/3"))

    assert app.conf.broker_url == "redis://127.0.0.1:6390/3"
    assert app.conf.broker_transport_options == {}
    assert not (home / "broker").exists()
    schedule = app.conf.beat_schedule
    assert {entry["task"] for entry in schedule.values()} == SCHEDULED
    assert {entry["schedule"] for entry in schedule.values()} == {2.5}
    assert app.conf.task_acks_late is True and app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_ignore_result is True
    assert app.conf.broker_connection_retry_on_startup is True


def test_every_scheduled_task_is_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_celery(settings_for(monkeypatch, tmp_path / "home"))
    app.loader.import_default_modules()
    assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= set(app.tasks)
