"""The scheduler's Celery application: broker choice, worker habits and the beat schedule.

Run it with `celery -A control_plane.scheduler.app worker -B` or `python -m control_plane.scheduler`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from control_plane.scheduler.broker import broker_url, transport_options, uses_embedded_broker
from control_plane.settings import Settings, get_settings

QUEUE = "mallard.scheduler"
TASKS_MODULE = "control_plane.scheduler.tasks"
# Beat messages expire after two intervals (at least this long), so a worker that was down
# does not replay a backlog of identical runs when it comes back.
MIN_EXPIRES_SECONDS = 10.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    interval = settings.scheduler_interval_seconds
    options = {"expires": max(2 * interval, MIN_EXPIRES_SECONDS)}
    names = ["mark_offline_agents", "expire_commands", "purge_join_tokens", "fail_expired_build_leases"]
    if uses_embedded_broker(settings):
        names.append("prune_broker_files")
    return {
        name.replace("_", "-"): {"task": f"{TASKS_MODULE}.{name}", "schedule": interval, "options": options}
        for name in names
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery configuration for `settings`; creates `home` (beat's schedule file) and broker folders."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return {
        "broker_url": broker_url(settings),
        "broker_transport_options": transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # keep waiting for Redis after startup, too
        # Nothing reads results: tasks change rows and write the audit log.
        "result_backend": None,
        "task_ignore_result": True,
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        # Tasks are idempotent, so a run cut by a lost connection is simply redelivered.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,  # short housekeeping tasks; one at a time keeps SQLite writers apart
        # Stale bindings on the embedded transport would collect broadcasts nobody reads.
        "worker_enable_remote_control": not uses_embedded_broker(settings),
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": beat_schedule(settings),
        "beat_schedule_filename": str(settings.home / "celerybeat-schedule"),
    }


def make_celery(settings: Settings) -> Celery:
    """A Celery app for `settings`: Redis when `broker_url` is set, else the embedded transport.

    The configuration is applied lazily, when the app first needs it, so importing this
    module (as the API and the tests do) creates no folders under the default home.
    """
    app = Celery("mallard-scheduler", include=[TASKS_MODULE])
    app.add_defaults(lambda: celery_config(settings))
    return app


def worker_argv() -> list[str]:
    """Arguments for one process running the worker with its beat (what `mallard dev up` starts)."""
    return ["worker", "-B", "--pool", "solo", "--loglevel", "INFO", "--hostname", "scheduler@%h"]


app = make_celery(get_settings())
