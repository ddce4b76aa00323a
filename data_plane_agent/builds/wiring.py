"""Wiring: the store, the builders this host can run, and the BuildManager, from AgentSettings."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from data_plane_agent.builds.environments import SdkWheels, VirtualEnvironments, Wheelhouses
from data_plane_agent.builds.job import Builder
from data_plane_agent.builds.local import LocalBuilder
from data_plane_agent.builds.manager import BuildManager
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.settings import AgentSettings
from data_plane_agent.storage import ObjectStore, open_store

log = logging.getLogger("mallard.agent.builds")


def store_from_settings(settings: AgentSettings) -> ObjectStore:
    return open_store(
        settings.store_url,
        default_root=settings.home / "store",
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
    )


def builders_from_settings(settings: AgentSettings, *, docker: bool | None = None) -> dict[str, Builder]:
    """The local builder always; the Docker builder when an engine answers (or `docker=True`)."""
    cache = settings.home / "cache"
    sdk = SdkWheels(cache / "sdk-wheels", explicit_wheel=settings.sdk_wheel)
    builders: dict[str, Builder] = {
        "local": LocalBuilder(sdk=sdk, environments=VirtualEnvironments(cache / "envs"), pip_cache=cache / "pip")
    }
    if docker is False:
        return builders
    from data_plane_agent.builds.docker import DockerBuilder, docker_reachable

    reachable, why = docker_reachable()
    if reachable or docker:
        builders["docker"] = DockerBuilder(
            sdk=sdk,
            wheelhouses=Wheelhouses(cache / "wheelhouses", python=sys.executable),
            base_image=settings.docker_base_image,
            pip_cache=cache / "pip",
        )
    else:
        log.info("no Docker engine (%s); docker builds are not available on this agent", why)
    return builders


def build_manager_from_settings(
    settings: AgentSettings,
    *,
    home: Path,
    store: ObjectStore,
    outbox: Outbox,
    tenant_id: str,
    notify: Callable[[], None] | None = None,
    docker: bool | None = None,
) -> BuildManager:
    return BuildManager(
        home=home,
        store=store,
        outbox=outbox,
        tenant_id=tenant_id,
        builders=builders_from_settings(settings, docker=docker),
        max_concurrent=settings.max_concurrent_builds,
        build_timeout_seconds=settings.build_timeout_seconds,
        notify=notify,
    )
