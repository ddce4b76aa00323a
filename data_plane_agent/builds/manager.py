"""BuildManager: accepts `build.run` specs, runs at most `max_concurrent_builds` at a time, walks
each through the phases of shared/builds.py, and reports progress as `build.phase` /
`build.finished` events through the outbox (metadata only; the full log stays in the store)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_plane_agent.builds import recovery
from data_plane_agent.builds.job import Builder, BuildJob
from data_plane_agent.builds.log import BuildLog, LogSyncer
from data_plane_agent.builds.pipeline import BuildPipeline
from data_plane_agent.builds.state import BuildRecord, BuildTable, now_ms
from data_plane_agent.builds.steps import BuildCancelled, CancelToken, StepFailed
from data_plane_agent.link.outbox import Outbox
from data_plane_agent.storage import ObjectMissing, ObjectStore, build_log_key, digest_hex
from data_plane_agent.storage.layout import check_build_id
from shared import __version__
from shared import builds as contract
from shared.errors import InvalidInput, Unavailable

log = logging.getLogger("mallard.agent.builds")

Status = contract.BuildStatus
RESTARTED = "the agent restarted during the build; run it again"
STOPPED = "the agent was stopped during the build; run it again"
LOG_READ_LIMIT = 1024 * 1024


@dataclass
class _Active:
    cancel: CancelToken
    log: BuildLog | None = None


class BuildManager:
    """Thread-based: builds run in worker threads, steps in their own process groups.

    `submit()` and `cancel()` return at once; call `start()` once (crash recovery, then ready)
    and `shutdown()` at the end (safe to call twice).
    """

    def __init__(
        self,
        *,
        home: Path,
        store: ObjectStore,
        outbox: Outbox,
        tenant_id: str,
        builders: dict[str, Builder],
        max_concurrent: int = 2,
        build_timeout_seconds: float = 3600.0,
        notify: Callable[[], None] | None = None,
        log_sync_interval: float = 2.0,
    ) -> None:
        self.root = home / "builds"
        self.store = store
        self.outbox = outbox
        self.tenant_id = tenant_id
        self.builders = builders
        self.build_timeout_seconds = build_timeout_seconds
        self._notify = notify
        self.table = BuildTable(self.root / "builds.db")
        self._pool = ThreadPoolExecutor(max_workers=max(1, max_concurrent), thread_name_prefix="build")
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._stopping = False
        self._closed = False
        self._syncer = LogSyncer(log_sync_interval)
        self._pipeline = BuildPipeline(store=store, table=self.table, emit=self._emit, stopping=lambda: self._stopping)

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Fail builds a previous agent process left running; queue again the ones it never started."""
        for record in self.table.with_status(Status.RUNNING):
            self._recover_running(record)
        for record in self.table.with_status(Status.QUEUED):
            if record.spec is not None:
                log.info("build %s was queued before the restart; queueing it again", record.build_id)
                self._queue(record.build_id)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop running builds (reported FAILED: the agent stopped), leave queued ones queued."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            running = list(self._active.values())
        for active in running:
            active.cancel.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not any(a.log is not None for a in self._active.values()):
                    break
            time.sleep(0.05)
        else:
            # A worker still records its build's end; its state stays open for it.
            log.warning("builds still stopping after %.0fs: %s", timeout, ", ".join(self._active))
            self._syncer.stop()
            return
        self._syncer.stop()
        self.table.close()

    # ---- commands ----------------------------------------------------------------------

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Record and queue a `build.run` spec. A redelivered spec is not run twice."""
        clean = self._validate(spec)
        build_id = clean["build_id"]
        with self._lock:
            if self._stopping:
                raise Unavailable("the agent is shutting down; the build was not accepted, send it again")
            inserted = self.table.insert(build_id=build_id, spec=clean, builder=clean["builder"], status=Status.QUEUED)
            if not inserted:
                existing = self.table.get(build_id)
                status = existing.status if existing else Status.QUEUED
                return {"accepted": status != Status.CANCELLED, "build_id": build_id, "status": status}
            self._active[build_id] = _Active(cancel=CancelToken())
        self._queue(build_id)
        return {"accepted": True, "build_id": build_id, "status": Status.QUEUED.value}

    def cancel(self, build_id: str) -> dict[str, Any]:
        """Cancel a build in whatever phase it is; a finished build stays as it ended."""
        check_build_id(build_id)
        with self._lock:
            record = self.table.get(build_id)
            if record is None:
                # The cancel overtook its run command: remember it so the run never starts.
                self.table.insert(build_id=build_id, spec=None, builder="", status=Status.CANCELLED)
                self.table.update(build_id, finished_at_ms=now_ms(), error_summary="cancelled before it was received")
                self._emit_finished(self.table.get(build_id))
                return {"build_id": build_id, "status": Status.CANCELLED.value, "cancelled": True}
            if Status(record.status).final:
                return {"build_id": build_id, "status": record.status, "cancelled": False}
            active = self._active.get(build_id)
            if active is None or active.log is None:
                # Still queued: it never started, so it ends here without phases.
                if active is not None:
                    active.cancel.cancel()
                self.table.update(
                    build_id,
                    status=Status.CANCELLED,
                    finished_at_ms=now_ms(),
                    error_summary="cancelled while queued",
                )
                self._active.pop(build_id, None)
                self._emit_finished(self.table.get(build_id))
                return {"build_id": build_id, "status": Status.CANCELLED.value, "cancelled": True}
        active.cancel.cancel()  # the worker records CANCELLED once the current step has stopped
        return {"build_id": build_id, "status": Status.RUNNING.value, "cancelled": True}

    # ---- reads (data-plane API) ------------------------------------------------------

    def get(self, build_id: str) -> BuildRecord | None:
        check_build_id(build_id)
        return self.table.get(build_id)

    def read_log(self, build_id: str, offset: int = 0, limit: int = LOG_READ_LIMIT) -> tuple[bytes, int, str] | None:
        """(bytes from `offset`, the next offset, build status), or None for an unknown build."""
        record = self.get(build_id)
        if record is None:
            return None
        offset = max(0, offset)
        with self._lock:
            active = self._active.get(build_id)
            live = active.log.path if active is not None and active.log is not None else None
        data = b""
        if live is not None:
            try:
                with open(live, "rb") as handle:
                    handle.seek(offset)
                    data = handle.read(limit)
                return data, offset + len(data), record.status
            except FileNotFoundError:
                record = self.get(build_id) or record  # it just finished; the store has it all
        try:
            with self.store.open_read(build_log_key(build_id), offset) as handle:
                data = handle.read(limit)
        except ObjectMissing:
            data = b""
        return data, offset + len(data), record.status

    # ---- running -----------------------------------------------------------------------

    def _validate(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            build_id = check_build_id(str(spec["build_id"]))
            digest = str(spec["context_digest"])
            digest_hex(digest, field="context_digest")
            builder = str(spec.get("builder") or contract.Builder.LOCAL)
            model = str(spec.get("model") or "")
        except KeyError as exc:
            raise InvalidInput(f"build.run spec is missing {exc.args[0]!r}", field=str(exc.args[0])) from exc
        if spec.get("tenant_id") and spec["tenant_id"] != self.tenant_id:
            raise InvalidInput("build.run spec is for another tenant", field="tenant_id")
        if builder not in {b.value for b in contract.Builder}:
            raise InvalidInput(f"unknown builder {builder!r}; use local or docker", field="builder")
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            raise InvalidInput("params must be an object of names to values", field="params")
        tags = spec.get("tags") or []
        return {
            "build_id": build_id,
            "tenant_id": self.tenant_id,
            "model": model,
            "context_digest": digest,
            "builder": builder,
            "params": contract.clean_params(params),
            "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        }

    def _queue(self, build_id: str) -> None:
        with self._lock:
            self._active.setdefault(build_id, _Active(cancel=CancelToken()))
        try:
            self._pool.submit(self._run_guarded, build_id)
        except RuntimeError:  # shutting down: it stays QUEUED and runs after the restart
            with self._lock:
                self._active.pop(build_id, None)

    def _run_guarded(self, build_id: str) -> None:
        try:
            self._run(build_id)
        except Exception:
            log.exception("build %s: unexpected error in the build manager", build_id)

    def _run(self, build_id: str) -> None:
        with self._lock:
            record = self.table.get(build_id)
            active = self._active.get(build_id)
            if record is None or record.status != Status.QUEUED or active is None or self._stopping:
                return
            if active.cancel.cancelled:
                return
            workdir = self.root / "work" / build_id
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            build_log = BuildLog(self.root / "logs" / f"{build_id}.log", store=self.store, build_id=build_id)
            active.log = build_log
            started = now_ms()
            self.table.update(build_id, status=Status.RUNNING, started_at_ms=started)
        self._syncer.add(build_log)
        assert record.spec is not None
        spec = record.spec
        job = BuildJob(
            build_id=build_id,
            spec=spec,
            workdir=workdir,
            log=build_log,
            cancel=active.cancel,
            deadline=time.monotonic() + self.build_timeout_seconds,
            on_process=lambda pid: self.table.update(build_id, pid=pid),
        )
        builder = self.builders.get(spec["builder"])
        build_log.line(f"build {build_id}: model {spec['model']!r}, builder {spec['builder']}, agent {__version__}")
        outcome: dict[str, Any] = {"status": Status.FAILED, "params": spec["params"], "metrics": {}}
        try:
            outcome.update(self._pipeline.run(job, builder))
            outcome["status"] = Status.SUCCEEDED
        except BuildCancelled:
            outcome["status"] = Status.FAILED if self._stopping else Status.CANCELLED
            outcome["error"] = STOPPED if self._stopping else f"cancelled during {job.phase}"
        except StepFailed as exc:
            outcome["error"] = contract.summarize_error(str(exc))
        finally:
            if builder is not None:
                with contextlib.suppress(Exception):
                    builder.release(job)
        self._finish(job, outcome, started)

    def _finish(self, job: BuildJob, outcome: dict[str, Any], started_ms: int) -> None:
        status: Status = outcome["status"]
        error = outcome.get("error")
        job.log.line(f"build {status.value}" + (f": {error}" if error else ""))
        with self._lock:
            active = self._active.get(job.build_id)
        self._syncer.remove(job.log)
        try:
            job.log.close()  # the complete log is in the store before the status says final
        except Exception as exc:
            log.warning("build %s: could not store the log: %s", job.build_id, exc)
        finished = now_ms()
        record = self.table.get(job.build_id)
        self.table.update(
            job.build_id,
            status=status,
            error_summary=error,
            failed_phase=record.failed_phase if record and status != Status.SUCCEEDED else None,
            params=contract.clean_params(outcome.get("params") or {}),
            metrics=contract.clean_metrics(outcome.get("metrics") or {}),
            artifact_digest=outcome.get("artifact_digest"),
            artifact_uri=outcome.get("artifact_uri"),
            image=outcome.get("image"),
            finished_at_ms=finished,
            pid=None,
        )
        self._emit_finished(self.table.get(job.build_id), duration=(finished - started_ms) / 1000)
        with self._lock:
            if active is not None:
                self._active.pop(job.build_id, None)
        job.log.path.unlink(missing_ok=True)
        shutil.rmtree(job.workdir, ignore_errors=True)

    # ---- recovery ------------------------------------------------------------------------

    def _recover_running(self, record: BuildRecord) -> None:
        log.warning("build %s was running when the agent stopped; reporting it FAILED", record.build_id)
        if record.pid:
            recovery.kill_leftover(record.pid, record.build_id)
        builder = self.builders.get(record.builder)
        if builder is not None:
            with contextlib.suppress(Exception):
                builder.recover(record.build_id)
        local_log = self.root / "logs" / f"{record.build_id}.log"
        if local_log.exists():
            with open(local_log, "ab") as handle:
                handle.write(f"\n{RESTARTED}\n".encode())
            with contextlib.suppress(Exception):
                self.store.put_file(build_log_key(record.build_id), local_log)
            local_log.unlink()
        shutil.rmtree(self.root / "work" / record.build_id, ignore_errors=True)
        at = now_ms()
        failed_phase = record.phase
        open_phases = [p for p in record.phases if p["state"] == "started"]
        for phase in open_phases:
            self.table.phase_finished(record.build_id, phase["phase"], "failed", at)
            self._emit(
                contract.PHASE_EVENT,
                {"build_id": record.build_id, "phase": phase["phase"], "state": "failed", "at_unix_ms": at},
            )
        self.table.update(
            record.build_id,
            status=Status.FAILED,
            failed_phase=failed_phase,
            error_summary=RESTARTED,
            finished_at_ms=at,
            pid=None,
        )
        started = record.started_at_ms or record.submitted_at_ms
        self._emit_finished(self.table.get(record.build_id), duration=(at - started) / 1000)

    # ---- events ------------------------------------------------------------------------

    def _emit(self, type_: str, payload: dict[str, Any]) -> None:
        self.outbox.append(type_, payload)
        if self._notify is not None:
            with contextlib.suppress(Exception):
                self._notify()

    def _emit_finished(self, record: BuildRecord | None, duration: float = 0.0) -> None:
        assert record is not None
        payload: contract.FinishedPayload = {
            "build_id": record.build_id,
            "status": record.status,
            "failed_phase": record.failed_phase if record.status != Status.SUCCEEDED else None,
            "error_summary": contract.summarize_error(record.error_summary) if record.error_summary else None,
            "params": record.params,
            "metrics": record.metrics,
            "artifact_digest": record.artifact_digest,
            "artifact_uri": record.artifact_uri,
            "image": record.image,
            "duration_seconds": round(duration, 3),
        }
        self._emit(contract.FINISHED_EVENT, dict(payload))
