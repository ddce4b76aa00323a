"""`FeatureService`: the feature store as the agent runs it — commands, schedules, stream consumers.

It wraps a `FeatureEngine` and reports to the control plane through the outbox, metadata only:
`features.materialization` (a job's status and row counts) and `features.freshness` (last
materialized time, offline rows, online keys). Materializations run one at a time in a worker
thread; scheduled feature sets are materialized incrementally when their schedule fires; every
applied stream feature set has a running consumer.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from data_plane_agent.features.engine import FeatureEngine
from data_plane_agent.features.schedule import Schedule
from data_plane_agent.link.outbox import Outbox
from mallard.features import AnyFeatureSet, FeatureSet, StreamFeatureSet
from shared import features as contract
from shared.errors import InvalidInput, MallardError, NotFound

log = logging.getLogger("mallard.agent.features")
Status = contract.MaterializationStatus
PROGRESS_EVERY_SECONDS = 1.0
MATERIALIZE_CONCURRENCY = 2  # the agent default (MALLARD_AGENT_FEATURES_MATERIALIZE_CONCURRENCY)
INTERRUPTED = "the agent stopped before this materialization finished; run it again"
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _typed_keys(types: dict[str, str], keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keys with int columns given as text ("7", from a command line) turned into ints, so answers
    echo them with their declared type."""
    out = []
    for i, key in enumerate(keys):
        typed = dict(key)
        for column, type_name in types.items():
            value = typed.get(column)
            if type_name == "int" and isinstance(value, str):
                try:
                    typed[column] = int(value.strip())
                except ValueError as exc:
                    raise InvalidInput(f"key {i}: {column} must be an integer, got {value!r}", field="keys") from exc
        out.append(typed)
    return out


class FeatureService:
    """Call `start()` once and `shutdown()` at the end (safe twice); commands come in via `apply` /
    `materialize`, which return at once with metadata (materializations report by events)."""

    def __init__(
        self,
        engine: FeatureEngine,
        *,
        outbox: Outbox,
        notify: Callable[[], None] | None = None,
        redis_url: str | None = None,
        schedule_interval_seconds: float = 30.0,
        materialize_concurrency: int = MATERIALIZE_CONCURRENCY,
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.redis_url = redis_url or None
        self.schedule_interval_seconds = schedule_interval_seconds
        self._notify = notify
        if materialize_concurrency < 1:
            raise InvalidInput("materialize_concurrency must be at least 1", field="features_materialize_concurrency")
        # Runs of different sets overlap (one's SQLite writes with another's Parquet work); runs of
        # the same set version wait for each other (the materializer's file lock).
        self._pool = ThreadPoolExecutor(max_workers=materialize_concurrency, thread_name_prefix="materialize")
        self._lock = threading.Lock()
        self._jobs: dict[str, Future[None]] = {}  # job id (or "schedule:<set>") -> its run
        self._streams: dict[tuple[str, str, int], Any] = {}
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._last_tick = datetime.now(UTC)
        self._reported: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self._project_of: dict[str, str] = {}  # feature-set name -> its only project (cleared by apply)
        self._inflight = engine.home / "jobs"  # a file per accepted job until its final event is queued

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._inflight.mkdir(parents=True, exist_ok=True)
        for marker in sorted(self._inflight.iterdir()):  # jobs a stopped or killed agent left behind
            self._job_event(marker.name, Status.FAILED, error_summary=INTERRUPTED)
            marker.unlink(missing_ok=True)
        for project in self.projects():
            for fs in self.engine.definitions(project=project):
                if isinstance(fs, StreamFeatureSet):
                    self._start_stream(project, fs)
        self._scheduler = threading.Thread(target=self._schedule_loop, name="feature-schedules", daemon=True)
        self._scheduler.start()

    def shutdown(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout)
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for aggregator in streams:
            with contextlib.suppress(Exception):
                aggregator.stop()
        # Queued runs are dropped (a restart or the next schedule redoes them: runs are idempotent);
        # a running one gets until the deadline.
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = [f for f in self._jobs.values() if not f.done()]
        if running:
            futures.wait(running, timeout=timeout)

    def projects(self) -> list[str]:
        """Projects with applied definitions (the registry is keyed by project name)."""
        path = self.engine.home / "registry.sqlite"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return [row[0] for row in db.execute("SELECT DISTINCT project FROM definitions ORDER BY project")]

    def project_of(self, name: str, project: str | None = None) -> str:
        """The project a feature-set name belongs to (given, or the only one that has it)."""
        if project:
            return project
        cached = self._project_of.get(name)
        if cached is not None:  # online reads must not list the registry every call
            return cached
        having = [p for p in self.projects() if any(fs.name == name for fs in self.engine.definitions(project=p))]
        if not having:
            raise NotFound(f"feature set {name!r} is not applied on this agent", field="feature_set")
        if len(having) > 1:
            raise InvalidInput(
                f"feature set {name!r} exists in projects {', '.join(having)}; name the project", field="project"
            )
        self._project_of[name] = having[0]
        return having[0]

    def get_online(
        self,
        feature_set: str,
        keys: list[dict[str, Any]],
        features: list[str] | None = None,
        version: int | None = None,
        *,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Online values (see FeatureEngine.get_online); also a `mallard.enrichment.OnlineLookup`,
        so the prediction gateway can call `schema.enrich(frame, service)`."""
        resolved = self.project_of(feature_set, project)
        fs = self.engine.definition(feature_set, version, project=resolved)
        return self.engine.get_online(
            fs.name, _typed_keys(fs.entity.keys, keys), features, fs.version, project=resolved
        )

    def get_online_many(
        self, sets: list[tuple[str, int | None, list[str] | None]], keys: list[dict[str, Any]], *, project: str
    ) -> list[tuple[AnyFeatureSet, list[str], list[dict[str, Any]]]]:
        """Online values of several feature sets of one project (name, version or None for the latest,
        features or None for all) for the same keys, read together. Per set: its definition, the
        features read and one row per key (as `get_online`)."""
        definitions = [
            (self.engine.definition(name, version, project=project), features) for name, version, features in sets
        ]
        # Keys are typed per entity key schema; sets sharing one are read from the store together.
        groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
        for i, (fs, _) in enumerate(definitions):
            groups.setdefault(tuple(fs.entity.keys.items()), []).append(i)
        results: dict[int, tuple[list[str], list[dict[str, Any]]]] = {}
        for shape, members in groups.items():
            typed = _typed_keys(dict(shape), keys)
            answers = self.engine.get_online_many([definitions[i] for i in members], typed, project=project)
            results.update(zip(members, answers, strict=True))
        return [(fs, *results[i]) for i, (fs, _) in enumerate(definitions)]

    # ---- commands ---------------------------------------------------------------------------

    def apply(self, spec: dict[str, Any]) -> dict[str, Any]:
        """`features.apply`: validate against the data here and store; start stream consumers."""
        by_project: dict[str, list[dict[str, Any]]] = {}
        for item in spec.get("definitions") or []:
            by_project.setdefault(str(item["project"]), []).append(dict(item["definition"]))
        applied: list[dict[str, Any]] = []
        self._project_of.clear()
        for project, definitions in by_project.items():
            for result in self.engine.apply(definitions, project=project):
                applied.append({"project": project, **result})
        self._project_of.clear()  # again: a read during the apply may have cached the old answer
        for item in applied:
            fs = self.engine.definition(item["name"], item["version"], project=item["project"])
            if isinstance(fs, StreamFeatureSet) and (item["changed"] or self._stream_key(item) not in self._streams):
                self._start_stream(item["project"], fs)
            self.report_freshness(item["project"], item["name"], item["version"], force=True)
        return {"applied": applied}

    def materialize(self, spec: dict[str, Any]) -> dict[str, Any]:
        """`features.materialize`: queue the job and answer at once (idempotent by job id)."""
        job_id = str(spec.get("job_id") or "")
        if not JOB_ID.match(job_id):
            raise InvalidInput(f"job_id {job_id!r} is not a job id", field="job_id")
        project, name, version = str(spec["project"]), str(spec["name"]), int(spec["version"])
        fs = self.engine.definition(name, version, project=project)  # NotFound before anything is queued
        if not isinstance(fs, FeatureSet):
            raise InvalidInput(f"{name!r} is a stream feature set; it is materialized continuously", field="name")
        start, end = _time(spec.get("start")), _time(spec.get("end"))
        with self._lock:
            if job_id not in self._jobs:
                self._inflight.mkdir(parents=True, exist_ok=True)
                (self._inflight / job_id).touch()
                self._jobs[job_id] = self._pool.submit(self._run, job_id, project, name, version, start, end)
        return {"job_id": job_id, "accepted": True}

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until a queued job has finished (tests and in-process callers)."""
        with self._lock:
            future = self._jobs.get(job_id)
        if future is not None:
            future.result(timeout)

    # ---- running ----------------------------------------------------------------------------

    def _emit(self, type_: str, payload: dict[str, Any]) -> None:
        self.outbox.append(type_, payload)
        if self._notify is not None:
            self._notify()

    def _job_event(self, job_id: str | None, status: Status, **fields: Any) -> None:
        if job_id is None:  # a scheduled run has no job on the control plane; freshness tells
            return
        payload: contract.MaterializationPayload = {
            "job_id": job_id,
            "status": status.value,
            "at": _iso(datetime.now(UTC)) or "",
            **fields,  # type: ignore[typeddict-item]
        }
        self._emit(contract.MATERIALIZATION_EVENT, dict(payload))

    def _run(
        self, job_id: str | None, project: str, name: str, version: int, start: datetime | None, end: datetime | None
    ) -> None:
        self._job_event(job_id, Status.RUNNING, rows_done=0)
        last = 0.0

        def progress(_phase: str, done: int, total: int | None) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_SECONDS:
                last = now
                self._job_event(job_id, Status.RUNNING, rows_done=int(done), rows_total=total)

        try:
            result = self.engine.materialize(name, version, project=project, start=start, end=end, progress=progress)
        except Exception as exc:  # any failure ends the job FAILED with a short reason
            message = exc.message if isinstance(exc, MallardError) else f"{type(exc).__name__}: {exc}"
            log.warning("materialization of %s v%s failed: %s", name, version, message)
            self._job_event(job_id, Status.FAILED, error_summary=contract.summarize_error(message))
        else:
            self._job_event(job_id, Status.SUCCEEDED, rows_done=result.source_rows, rows_total=result.source_rows)
        if job_id is not None:
            (self._inflight / job_id).unlink(missing_ok=True)
        self.report_freshness(project, name, version, force=True)

    def report_freshness(self, project: str, name: str, version: int, *, force: bool = False) -> None:
        """Send `features.freshness` for one version (only when something changed, unless forced)."""
        try:
            fresh = self.engine.freshness(name, version, project=project)
        except Exception as exc:
            log.warning("cannot read the freshness of %s v%s: %s", name, version, exc)
            return
        key = (project, name, version)
        state = (fresh.last_materialized_at, fresh.offline_rows, fresh.online_keys)
        if not force and self._reported.get(key) == state:
            return
        self._reported[key] = state
        payload: contract.FreshnessPayload = {
            "project": project,
            "name": name,
            "version": version,
            "last_materialized_at": _iso(fresh.last_materialized_at),
            "offline_rows": fresh.offline_rows,
            "online_keys": fresh.online_keys,
            "at": _iso(datetime.now(UTC)) or "",
        }
        self._emit(contract.FRESHNESS_EVENT, dict(payload))

    # ---- streams and schedules --------------------------------------------------------------

    @staticmethod
    def _stream_key(item: dict[str, Any]) -> tuple[str, str, int]:
        return (str(item["project"]), str(item["name"]), int(item["version"]))

    def _start_stream(self, project: str, fs: StreamFeatureSet) -> None:
        key = (project, fs.name, fs.version)
        with self._lock:
            previous = self._streams.pop(key, None)
        if previous is not None:
            previous.stop()
        try:
            aggregator = self.engine.stream_aggregator(fs.name, fs.version, project=project, redis_url=self.redis_url)
            aggregator.start()
        except Exception as exc:  # a stream that cannot be read must not stop the agent
            log.error("cannot consume the stream of %s v%s: %s", fs.name, fs.version, exc)
            return
        with self._lock:
            self._streams[key] = aggregator

    def _schedule_loop(self) -> None:
        while not self._stop.wait(self.schedule_interval_seconds):
            try:
                self.tick(datetime.now(UTC))
            except Exception:
                log.exception("feature schedule check failed")

    def tick(self, now: datetime, since: datetime | None = None) -> list[str]:
        """Queue every scheduled feature set whose schedule fired in (since, now] (default: since the
        last tick); report stream freshness that changed. Returns the sets queued (as name:vN)."""
        since, self._last_tick = since or self._last_tick, now
        queued: list[str] = []
        for project in self.projects():
            for fs in self.engine.definitions(project=project):
                if isinstance(fs, StreamFeatureSet):
                    self.report_freshness(project, fs.name, fs.version)
                    continue
                if not fs.schedule:
                    continue
                try:
                    due = Schedule(fs.schedule).fires_between(since, now)
                except ValueError as exc:
                    log.warning("%s v%s: %s", fs.name, fs.version, exc)
                    continue
                key = f"schedule:{project}/{fs.name}/v{fs.version}"
                with self._lock:
                    running = self._jobs.get(key)
                    if not due or (running is not None and not running.done()):
                        continue
                    self._jobs[key] = self._pool.submit(self._run, None, project, fs.name, fs.version, None, None)
                queued.append(f"{fs.name}:v{fs.version}")
        return queued
