"""The local builder (embedded default): a cached virtualenv per dependency set, steps run as
subprocesses of the agent with the environment's Python."""

from __future__ import annotations

from pathlib import Path

from data_plane_agent.builds.environments import SdkWheels, VirtualEnvironments, requirement_set
from data_plane_agent.builds.job import Builder, BuildJob
from data_plane_agent.builds.steps import PYTEST_COLUMNS, StepFailed, pytest_failures, run_step

PYTEST_NO_TESTS = 5


class LocalBuilder(Builder):
    """Runs each build in a ready virtualenv keyed by its requirements (see environments.py)."""

    name = "local"

    def __init__(self, *, sdk: SdkWheels, environments: VirtualEnvironments, pip_cache: Path) -> None:
        self.sdk = sdk
        self.environments = environments
        self.pip_cache = pip_cache
        self._venvs: dict[str, Path] = {}

    def _venv(self, job: BuildJob) -> Path:
        return self._venvs[job.build_id]

    def _env(self, job: BuildJob, **extra: str) -> dict[str, str]:
        venv = self._venvs.get(job.build_id)
        path_extra = {}
        if venv is not None:
            path = job.step_env()["PATH"]
            path_extra = {"PATH": f"{venv / 'bin'}:{path}", "VIRTUAL_ENV": str(venv)}
        return job.step_env(PIP_CACHE_DIR=str(self.pip_cache), **path_extra, **extra)

    def _run(self, job: BuildJob, argv: list[str | Path], title: str, **kwargs: object) -> None:
        env = kwargs.pop("env", None) or self._env(job)
        run_step(
            argv,
            title=title,
            cwd=job.project,
            env=env,  # type: ignore[arg-type]
            log=job.log,
            cancel=job.cancel,
            deadline=job.deadline,
            on_start=job.on_process,
            **kwargs,  # type: ignore[arg-type]
        )

    def resolve_dependencies(self, job: BuildJob) -> None:
        env = self._env(job)
        sdk = self.sdk.ensure(log=job.log, cancel=job.cancel, deadline=job.deadline, env=env)
        requirements = requirement_set(job.config.requirements)
        venv, warm = self.environments.ensure(
            requirements=requirements, sdk=sdk, log=job.log, cancel=job.cancel, deadline=job.deadline, env=env
        )
        job.log.line(f"environment {'reused' if warm else 'created'}: {venv}")
        self._venvs[job.build_id] = venv

    def train(self, job: BuildJob) -> None:
        python = self._venv(job) / "bin" / "python"
        self._run(
            job,
            [
                python,
                "-m",
                "mallard.runtime",
                "train",
                "--project",
                job.project,
                "--output",
                job.out,
                "--params-json",
                job.params_file,
            ],
            "training (mallard.runtime train)",
        )

    def test(self, job: BuildJob) -> None:
        python = self._venv(job) / "bin" / "python"
        self._run(job, [python, "-m", "mallard.runtime", "check", "--artifact", job.out / "model"], "artifact check")
        if not job.config.has_tests:
            job.log.line("the project has no tests/ directory; no project tests to run")
            return
        output = run_step(
            [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            title="project tests (pytest)",
            cwd=job.project,
            env=self._env(job, MALLARD_MODEL_DIR=str(job.out / "model"), COLUMNS=PYTEST_COLUMNS),
            log=job.log,
            cancel=job.cancel,
            deadline=job.deadline,
            on_start=job.on_process,
            check=False,
        )
        if output.returncode == PYTEST_NO_TESTS:
            job.log.line("tests/ holds no tests; nothing to run")
        elif output.returncode != 0:
            detail = pytest_failures(output.stdout_tail.splitlines()) or output.stdout_tail
            raise StepFailed(f"project tests failed (pytest exit code {output.returncode}):\n{detail}")

    def collect(self, job: BuildJob) -> None:
        """Training wrote job.out directly."""

    def release(self, job: BuildJob) -> None:
        self._venvs.pop(job.build_id, None)
