"""Wiring: the serving engine and the runtimes this host can run, from AgentSettings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from data_plane_agent.builds.environments import SdkWheels, VirtualEnvironments
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.serving.artifacts import ArtifactCache
from data_plane_agent.serving.engine import ServingEngine
from data_plane_agent.serving.runtimes import LocalRuntime, ServingRuntime
from data_plane_agent.settings import AgentSettings
from data_plane_agent.storage import ObjectStore

log = logging.getLogger("mallard.agent.serving")


def runtimes_from_settings(
    settings: AgentSettings, *, home: Path, store: ObjectStore, docker: bool | None = None
) -> dict[str, ServingRuntime]:
    """The local runtime always (sharing the builds' environment cache); Docker when an engine answers."""
    cache = home / "cache"
    artifacts = ArtifactCache(home / "serving" / "artifacts", store)
    runtimes: dict[str, ServingRuntime] = {
        "local": LocalRuntime(
            artifacts=artifacts,
            sdk=SdkWheels(cache / "sdk-wheels", explicit_wheel=settings.sdk_wheel),
            environments=VirtualEnvironments(cache / "envs"),
            work_dir=home / "serving",
            pip_cache=cache / "pip",
        )
    }
    if docker is False:
        return runtimes
    from data_plane_agent.builds.docker import docker_reachable

    reachable, why = docker_reachable()
    if reachable or docker:
        from data_plane_agent.serving.docker_runtime import DockerRuntime

        runtimes["docker"] = DockerRuntime(artifacts=artifacts, work_dir=home / "serving", owner=str(home))
    else:
        log.info("no Docker engine (%s); the docker serving runtime is not available on this agent", why)
    return runtimes


def engine_from_settings(
    settings: AgentSettings,
    *,
    home: Path,
    store: ObjectStore,
    outbox: Outbox | None,
    notify: Callable[[], None] | None = None,
    docker: bool | None = None,
) -> ServingEngine:
    return ServingEngine(
        home=home,
        runtimes=runtimes_from_settings(settings, home=home, store=store, docker=docker),
        store=store,
        outbox=outbox,
        notify=notify,
    )
