"""Where the scheduler's messages travel: Redis in production, a folder on disk when embedded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from control_plane.settings import Settings

EMBEDDED_BROKER_URL = "filesystem://"


def uses_embedded_broker(settings: Settings) -> bool:
    return settings.effective_broker_url == EMBEDDED_BROKER_URL


def broker_url(settings: Settings) -> str:
    """The URL Celery connects to; the embedded one names its (only) host to keep kombu quiet."""
    return "filesystem://localhost//" if uses_embedded_broker(settings) else settings.effective_broker_url


def broker_dir(settings: Settings) -> Path:
    return settings.home / "broker"


def processed_dir(settings: Settings) -> Path:
    return broker_dir(settings) / "processed"


def embedded_transport_options(settings: Settings) -> dict[str, Any]:
    """kombu filesystem transport options, creating its folders under `settings.home`.

    Producers write to `data_folder_out` and consumers read `data_folder_in`; every process
    here both sends and receives, so they are one folder. `control_folder` holds the
    exchange bindings that let a process route to a queue another process declared; kombu's
    default for it is relative to the working directory, which would split the broker.
    Processed messages are kept (and pruned by a task) because otherwise kombu claims a
    message by moving it to the system temp dir, which is not atomic across filesystems.
    """
    root = broker_dir(settings)
    messages, control = root / "messages", root / "control"
    for folder in (messages, processed_dir(settings), control):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(messages),
        "data_folder_out": str(messages),
        "processed_folder": str(processed_dir(settings)),
        "control_folder": str(control),
        "store_processed": True,
        "polling_interval": 0.25,
    }


def transport_options(settings: Settings) -> dict[str, Any]:
    return embedded_transport_options(settings) if uses_embedded_broker(settings) else {}
