"""One build as it runs: its directories, log, cancel token and deadline, and the interface
every builder implements (resolve dependencies, train, test, collect the trained model)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_plane_agent.builds.context import ProjectBuildConfig
from data_plane_agent.builds.log import BuildLog
from data_plane_agent.builds.steps import CancelToken, child_env


@dataclass
class BuildJob:
    """Everything a builder needs about the build it runs."""

    build_id: str
    spec: dict[str, Any]
    workdir: Path
    log: BuildLog
    cancel: CancelToken
    deadline: float  # time.monotonic() by which the build must end
    project: Path = field(default=Path())  # the unpacked context (set by the fetch phase)
    config: ProjectBuildConfig = field(default_factory=ProjectBuildConfig)
    image: str | None = None  # docker builder: the image it tagged
    phase: str | None = None  # the phase running now
    on_process: Any = None  # callback(pid | None) so the manager can record the running step

    @property
    def out(self) -> Path:
        """Where training writes model/ and result.json."""
        return self.workdir / "out"

    @property
    def params_file(self) -> Path:
        return self.workdir / "params.json"

    def step_env(self, **extra: str) -> dict[str, str]:
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        return child_env(
            dict(os.environ),
            **self.config.env,
            HOME=str(home),
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",  # builds never write into a shared environment
            MALLARD_BUILD_ID=self.build_id,
            **extra,
        )


class Builder(ABC):
    """How one kind of builder runs the middle phases. Fetch, package and publish are common."""

    name: str

    @abstractmethod
    def resolve_dependencies(self, job: BuildJob) -> None:
        """Make an environment with the SDK and the project's requirements."""

    @abstractmethod
    def train(self, job: BuildJob) -> None:
        """Run `mallard.runtime train` (model state ends up in job.out / the image)."""

    @abstractmethod
    def test(self, job: BuildJob) -> None:
        """Run `mallard.runtime check` and the project's tests against the trained model."""

    @abstractmethod
    def collect(self, job: BuildJob) -> None:
        """Make sure job.out holds model/ and result.json (the Docker builder copies them out)."""

    def release(self, job: BuildJob) -> None:  # noqa: B027  (optional hook)
        """Forget per-build state once the build ended, however it ended."""

    def recover(self, build_id: str) -> None:  # noqa: B027  (optional hook)
        """Clean up what a build left behind when the agent died during it."""
