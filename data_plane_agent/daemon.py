"""The agent process: enroll once, keep the link up, serve the data-plane API, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from importlib.util import find_spec

import uvicorn

from data_plane_agent.api.app import create_app
from data_plane_agent.api.inputs import InputLimits
from data_plane_agent.api.tokens import TokenVerifier
from data_plane_agent.builds.wiring import build_manager_from_settings, store_from_settings
from data_plane_agent.commands.features import attach_feature_service
from data_plane_agent.commands.handlers import attach_build_manager, attach_serving_engine, enable_capability
from data_plane_agent.features.enrich import enrich_table
from data_plane_agent.features.wiring import close_feature_service, feature_service_from_settings
from data_plane_agent.grpc_features import OnlineFeaturesServicer
from data_plane_agent.grpc_predict import PredictionServicer
from data_plane_agent.grpc_server import start_data_plane_grpc
from data_plane_agent.lake.wiring import lake_from_settings
from data_plane_agent.link.backoff import Backoff
from data_plane_agent.link.client import LinkClient
from data_plane_agent.link.enroll import EnrollmentError, enroll
from data_plane_agent.link.identity import AgentHome
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.serving.wiring import engine_from_settings
from data_plane_agent.settings import AgentSettings

log = logging.getLogger("mallard.agent")


class Agent:
    """`await run()` until `shutdown()` (safe to call more than once)."""

    def __init__(self, settings: AgentSettings) -> None:
        if not settings.control_plane:
            raise ValueError("--control-plane HOST:PORT is required")
        self.settings = settings
        self.home = AgentHome(settings.home)
        self._stop = asyncio.Event()
        self.link: LinkClient | None = None
        self._http: uvicorn.Server | None = None

    async def _ensure_enrolled(self) -> None:
        if self.home.enrolled:
            if self.settings.join_token:
                log.info("already enrolled as %s; ignoring the join token", self.home.identity().spiffe_id)
            return
        backoff = Backoff(self.settings.backoff_initial_seconds, self.settings.backoff_max_seconds)
        while not self._stop.is_set():
            try:
                await enroll(self.settings, self.home)
                return
            except EnrollmentError as exc:
                if not exc.retryable:
                    raise
                delay = backoff.next_delay()
                log.warning("%s; retrying in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    async def run(self) -> None:
        self.home.prepare()
        await self._ensure_enrolled()
        if self._stop.is_set():
            return
        outbox = Outbox(self.home.state_db)
        self.link = LinkClient(self.settings, self.home, outbox, self.home.identity())
        outbox.append("agent.started", {"run_id": self.link.run_id})
        loop = asyncio.get_running_loop()
        link = self.link

        def notify() -> None:  # from build threads: wake the link's outbox pump on its own loop
            loop.call_soon_threadsafe(link.notify_event)

        store = store_from_settings(self.settings)
        builds = await asyncio.to_thread(
            build_manager_from_settings,
            self.settings,
            home=self.home.root,
            store=store,
            outbox=outbox,
            tenant_id=self.home.identity().tenant_id,
            notify=notify,
        )
        if "docker" in builds.builders:
            enable_capability("build.docker")  # before the link's hello advertises capabilities
        await asyncio.to_thread(builds.start)
        attach_build_manager(self.home.root, builds)
        # The lake replays what a killed predecessor spooled before anything new is recorded.
        lake, lake_query = await asyncio.to_thread(
            lake_from_settings, self.settings, home=self.home.root, store=store, outbox=outbox, notify=notify
        )
        # Serving comes back from its persisted desired state, before any request can arrive.
        engine = await asyncio.to_thread(
            engine_from_settings, self.settings, home=self.home.root, store=store, outbox=outbox, notify=notify
        )
        if "docker" in engine.runtimes:
            enable_capability("serving.docker")
        engine.recorder = lake.record
        lake.logging_enabled = engine.logging_enabled
        await engine.start()
        attach_serving_engine(self.home.root, engine)
        # The feature store: applied definitions, schedules and stream consumers come back first.
        features = await asyncio.to_thread(
            feature_service_from_settings,
            self.settings,
            home=self.home.root,
            store=store,
            outbox=outbox,
            tenant_id=self.home.identity().tenant_id,
            notify=notify,
        )
        await asyncio.to_thread(features.start)
        attach_feature_service(self.home.root, features)
        enable_capability("features")
        engine.enricher = lambda schema, table: enrich_table(table, schema, features)
        limits = InputLimits(max_rows=self.settings.predict_max_rows, max_bytes=self.settings.predict_max_bytes)
        app = create_app(
            self.home,
            self.link.state,
            store=store,
            builds=builds,
            max_context_bytes=self.settings.max_context_bytes,
            engine=engine,
            predict_limits=limits,
            lake_query=lake_query,
            features=features,
        )
        verifier = TokenVerifier(self.home.jwt_public_key, tenant_id=self.home.identity().tenant_id)
        grpc_api = await start_data_plane_grpc(
            self.settings,
            verifier=verifier,
            services=[PredictionServicer(engine, limits).add_to_server, OnlineFeaturesServicer(features).add_to_server],
        )
        config = uvicorn.Config(
            app,
            host=self.settings.data_plane_host,
            port=self.settings.data_plane_port,
            log_level="warning",
            lifespan="off",
            # httptools parses HTTP in C (h11 is pure Python): ~0.1 ms less CPU per predict request.
            http="httptools" if find_spec("httptools") else "h11",
            access_log=False,
        )
        self._http = uvicorn.Server(config)
        # Signals belong to the agent (graceful shutdown of the link too), not to uvicorn.
        setattr(self._http, "install_signal_handlers", lambda: None)  # noqa: B010
        link_task = asyncio.create_task(self.link.run(), name="link")
        http_task = asyncio.create_task(self._http.serve(), name="data-plane-api")
        log.info("data plane API on %s", self.settings.effective_data_plane_url)
        stop_task = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait({link_task, http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down")
        attach_build_manager(self.home.root, None)
        # Running builds stop first (reported FAILED: the agent stopped); queued ones run after a restart.
        await asyncio.to_thread(builds.shutdown, self.settings.shutdown_grace_seconds / 2)
        # Serving drains its in-flight predictions and stops its replicas; then the lake flushes
        # every logged prediction and the last aggregates.
        attach_serving_engine(self.home.root, None)
        if grpc_api is not None:
            await grpc_api.stop(self.settings.shutdown_grace_seconds / 4)
        await engine.shutdown(self.settings.shutdown_grace_seconds / 2)
        await asyncio.to_thread(lake.close)
        attach_feature_service(self.home.root, None)
        await asyncio.to_thread(close_feature_service, features, self.settings.shutdown_grace_seconds / 4)
        self.link.stop()
        self._http.should_exit = True
        try:
            await asyncio.wait_for(
                asyncio.gather(link_task, http_task, return_exceptions=True), self.settings.shutdown_grace_seconds
            )
        except TimeoutError:
            log.warning("shutdown grace period elapsed; cancelling")
            link_task.cancel()
            http_task.cancel()
        outbox.close()
        store.close()
        for task in done:
            if task is not stop_task and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    def shutdown(self) -> None:
        self._stop.set()


async def run_agent(settings: AgentSettings) -> None:
    agent = Agent(settings)
    # The serving path allocates many short-lived objects (Arrow wrappers, records the lake keeps
    # for up to a second): with the default thresholds the collector runs often and walks every
    # object left from start-up. Those are frozen out of collection, and collections run less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.shutdown)
    await agent.run()
