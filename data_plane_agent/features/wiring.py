"""Wiring: the agent's FeatureEngine and FeatureService from AgentSettings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from data_plane_agent.features.engine import FeatureEngine
from data_plane_agent.features.online import open_online_store
from data_plane_agent.features.service import FeatureService
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.settings import AgentSettings
from data_plane_agent.storage import ObjectStore


def feature_service_from_settings(
    settings: AgentSettings,
    *,
    home: Path,
    store: ObjectStore,
    outbox: Outbox,
    tenant_id: str,
    notify: Callable[[], None] | None = None,
) -> FeatureService:
    online = open_online_store(settings.features_online_url, default_path=home / "features" / "online.sqlite")
    engine = FeatureEngine(home, store, online, tenant_id, memory_limit=settings.features_memory_limit)
    return FeatureService(
        engine,
        outbox=outbox,
        notify=notify,
        redis_url=settings.features_redis_url or None,
        schedule_interval_seconds=settings.features_schedule_interval_seconds,
        materialize_concurrency=settings.features_materialize_concurrency,
    )


def close_feature_service(service: FeatureService, timeout: float) -> None:
    """Stop schedules, stream consumers and running work, then close the stores (safe twice)."""
    service.shutdown(timeout)
    service.engine.close()
    service.engine.online.close()
