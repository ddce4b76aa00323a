"""The phases of one build, in order. Fetch, package and publish are the same for every builder;
resolve, train and test are the builder's. Each phase is recorded in the build table and reported
as a `build.phase` event when it starts and when it ends."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from data_plane_agent.builds.context import fetch_context, read_build_config
from data_plane_agent.builds.job import Builder, BuildJob
from data_plane_agent.builds.packaging import write_artifact
from data_plane_agent.builds.state import BuildTable, iso, now_ms
from data_plane_agent.builds.steps import BuildCancelled, StepFailed
from data_plane_agent.storage import ObjectStore, artifact_key
from shared import __version__
from shared import builds as contract
from shared.errors import MallardError

log = logging.getLogger("mallard.agent.builds")

Phase = contract.BuildPhase


class BuildPipeline:
    """Runs a BuildJob through the phases of shared/builds.py."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        table: BuildTable,
        emit: Callable[[str, dict[str, Any]], None],
        stopping: Callable[[], bool],
    ) -> None:
        self.store = store
        self.table = table
        self._emit = emit
        self._stopping = stopping

    def run(self, job: BuildJob, builder: Builder | None) -> dict[str, Any]:
        """Run every phase; returns params, metrics and the artifact. Raises BuildCancelled or StepFailed."""
        spec = job.spec
        with self._phase(job, Phase.FETCH_CONTEXT):
            job.project = fetch_context(self.store, spec["context_digest"], job.workdir)
            job.config = read_build_config(job.project)
            job.params_file.write_text(json.dumps(spec["params"]))
            job.log.line(
                f"context {spec['context_digest']} unpacked; tests/: {'yes' if job.config.has_tests else 'no'}"
            )
        with self._phase(job, Phase.RESOLVE_DEPENDENCIES):
            if builder is None:
                raise StepFailed(f"this agent has no {spec['builder']} builder (is its engine reachable?)")
            builder.resolve_dependencies(job)
        with self._phase(job, Phase.TRAIN):
            builder.train(job)
        with self._phase(job, Phase.TEST):
            builder.test(job)
        with self._phase(job, Phase.PACKAGE):
            builder.collect(job)
            result = _read_result(job.out / "result.json")
            manifest = {
                "build_id": job.build_id,
                "model": spec["model"],
                "context_digest": spec["context_digest"],
                "builder": spec["builder"],
                "params": result["params"],
                "metrics": result["metrics"],
                "created_at": iso(now_ms()),
                "sdk_version": __version__,
                "image": job.image,
            }
            if not (job.out / "model").is_dir():
                raise StepFailed("training wrote no model/ directory to package")
            archive = job.workdir / "artifact.tar.gz"
            hex_, size = write_artifact(
                target=archive, manifest=manifest, model_dir=job.out / "model", project=job.project
            )
            job.log.line(f"artifact sha256:{hex_} ({size} bytes)")
        with self._phase(job, Phase.PUBLISH):
            key = artifact_key(f"sha256:{hex_}")
            if self.store.exists(key):
                job.log.line(f"{key} is already in the store (artifacts are immutable; not overwritten)")
            else:
                stored = self.store.put_file(key, archive)
                if stored.sha256 != hex_:
                    raise StepFailed(f"the artifact changed while it was published ({stored.sha256} != {hex_})")
            job.cancel.raise_if_cancelled()
        return {
            "params": result["params"],
            "metrics": result["metrics"],
            "artifact_digest": f"sha256:{hex_}",
            "artifact_uri": self.store.uri(key),
            "image": job.image,
        }

    @contextlib.contextmanager
    def _phase(self, job: BuildJob, phase: Phase) -> Iterator[None]:
        job.cancel.raise_if_cancelled()
        job.phase = phase.value
        at = now_ms()
        self.table.phase_started(job.build_id, phase, at)
        self._emit(
            contract.PHASE_EVENT, {"build_id": job.build_id, "phase": phase.value, "state": "started", "at_unix_ms": at}
        )
        job.log.line(f"==> {phase.value}")
        state = "failed"
        try:
            yield
            job.cancel.raise_if_cancelled()
            state = "succeeded"
        except BuildCancelled:
            state = "failed" if self._stopping() else "cancelled"
            raise
        except StepFailed as exc:
            job.log.line(f"{phase.value} failed: {exc}")
            raise
        except MallardError as exc:
            job.log.line(f"{phase.value} failed: {exc.message}")
            raise StepFailed(exc.message) from exc
        except Exception as exc:
            log.exception("build %s: %s failed unexpectedly", job.build_id, phase.value)
            job.log.line(f"{phase.value} failed: {type(exc).__name__}: {exc}")
            raise StepFailed(f"{phase.value} failed on the agent: {type(exc).__name__}: {exc}") from exc
        finally:
            at = now_ms()
            if state != "succeeded":
                self.table.update(job.build_id, failed_phase=phase.value)
            self.table.phase_finished(job.build_id, phase, state, at)
            self._emit(
                contract.PHASE_EVENT, {"build_id": job.build_id, "phase": phase.value, "state": state, "at_unix_ms": at}
            )


def _read_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise StepFailed("training wrote no result.json (params and metrics)") from exc
    except json.JSONDecodeError as exc:
        raise StepFailed(f"result.json from training is not valid JSON: {exc}") from exc
    params = data.get("params") or {}
    metrics = data.get("metrics") or {}
    if not isinstance(params, dict) or not isinstance(metrics, dict):
        raise StepFailed("result.json must hold objects `params` and `metrics`")
    return {"params": contract.clean_params(params), "metrics": contract.clean_metrics(metrics)}
