"""Build environments: the Mallard SDK as a wheel (built once per source version) and cached,
ready-to-use dependency sets keyed by what goes into them.

An environment (a virtualenv for the local builder, a wheelhouse for the Docker builder) is keyed
by sha256(Python version + SDK version + sorted requirements). The first build with a key
creates it under a per-key file lock and marks it ready last; later builds reuse it. Builds run
in a ready virtualenv without changing it: nothing installs into it after it is marked ready, and
build steps run with PYTHONDONTWRITEBYTECODE so they do not even add bytecode caches.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from data_plane_agent.builds.log import BuildLog
from data_plane_agent.builds.steps import CancelToken, StepFailed, run_step

# What a build environment needs besides the project's requirements: the SDK's own dependencies
# (pyproject's `sdk` extra; this list is the fallback) and pytest for the project's tests.
SDK_REQUIREMENTS = ("pyyaml>=6", "pandas>=2", "numpy>=1.26", "pyarrow>=17")
TEST_REQUIREMENTS = ("pytest",)
# The SDK wheel holds only the packages a model needs at build and run time; the control plane
# and the agent stay out, so editing them does not invalidate every cached environment.
_SDK_PACKAGES = ("mallard", "shared")
_WHEEL_FILES = ("pyproject.toml", "README.md")
REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip entry can carry
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache", ".pytest_cache")


@contextlib.contextmanager
def file_lock(path: Path, cancel: CancelToken, deadline: float) -> Iterator[None]:
    """An exclusive lock another build (or agent process) may hold; waiting is cancellable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                cancel.raise_if_cancelled()
                if time.monotonic() > deadline:
                    raise StepFailed(f"timed out waiting for {path.name} (another build holds it)") from None
                cancel.wait(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sdk_source_root() -> Path | None:
    """The source tree this agent runs from, if it runs from one (a checkout or editable install)."""
    import mallard

    root = Path(mallard.__file__).resolve().parents[1]
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "mallard"' in pyproject.read_text():
        return root
    return None


def source_version(root: Path) -> str:
    """A hash of the SDK's packages (paths and contents) and the project version."""
    digest = hashlib.sha256()
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    digest.update(f"version={version}\0".encode())
    for package in _SDK_PACKAGES:
        for path in sorted(p for p in (root / package).rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class SdkWheel:
    """The SDK wheel and the id environments are keyed by (source hash, or the wheel's sha256)."""

    path: Path
    version_id: str


class SdkWheels:
    """`ensure()` returns the SDK wheel for the running source version, building it if needed
    (`pip wheel --no-deps` of a clean copy of the source tree, so the tree itself is untouched)."""

    def __init__(self, cache_dir: Path, *, explicit_wheel: Path | None = None) -> None:
        self.cache_dir = cache_dir
        self.explicit_wheel = explicit_wheel

    def ensure(self, *, log: BuildLog, cancel: CancelToken, deadline: float, env: dict[str, str]) -> SdkWheel:
        if self.explicit_wheel is not None:
            if not self.explicit_wheel.is_file():
                raise StepFailed(f"the configured SDK wheel {self.explicit_wheel} does not exist")
            return SdkWheel(self.explicit_wheel, "wheel-" + sha256_file(self.explicit_wheel))
        root = sdk_source_root()
        if root is None:
            raise StepFailed(
                "this agent is not running from a Mallard source tree; set MALLARD_AGENT_SDK_WHEEL to the SDK wheel"
            )
        version = source_version(root)
        target = self.cache_dir / version
        with file_lock(self.cache_dir / f"{version}.lock", cancel, deadline):
            wheels = sorted(target.glob("*.whl"))
            if wheels:
                return SdkWheel(wheels[0], version)
            log.line(f"building the Mallard SDK wheel for source version {version}")
            with tempfile.TemporaryDirectory(prefix="sdk-src-") as tmp:
                src = Path(tmp) / "src"
                src.mkdir()
                for package in _SDK_PACKAGES:
                    shutil.copytree(root / package, src / package, ignore=_IGNORE)
                for name in _WHEEL_FILES:
                    if (root / name).is_file():
                        shutil.copy2(root / name, src / name)
                out = Path(tmp) / "out"
                # Without setuptools here, pip fetches it into an isolated build environment.
                isolation = ["--no-build-isolation"] if _has_setuptools() else []
                run_step(
                    [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", out, src],
                    title="building the SDK wheel",
                    cwd=Path(tmp),
                    env={**env, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH},  # the same source, the same bytes
                    log=log,
                    cancel=cancel,
                    deadline=deadline,
                )
                built = sorted(out.glob("*.whl"))
                if not built:
                    raise StepFailed("building the SDK wheel produced no wheel")
                staging = self.cache_dir / f".{version}.tmp"
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                shutil.copy2(built[0], staging / built[0].name)
                os.replace(staging, target)
            return SdkWheel(next(target.glob("*.whl")), version)


def _has_setuptools() -> bool:
    try:
        import setuptools  # noqa: F401
    except ImportError:
        return False
    return True


def sdk_requirements() -> list[str]:
    """The SDK's dependencies as this agent's Mallard declares them (the `sdk` extra)."""
    root = sdk_source_root()
    if root is not None:
        extras = tomllib.loads((root / "pyproject.toml").read_text())["project"].get("optional-dependencies", {})
        if extras.get("sdk"):
            return [str(r) for r in extras["sdk"]]
    try:
        declared = importlib.metadata.requires("mallard") or []
    except importlib.metadata.PackageNotFoundError:
        declared = []
    found = [r.split(";")[0].strip() for r in declared if 'extra == "sdk"' in r.replace("'", '"')]
    return found or list(SDK_REQUIREMENTS)


def requirement_set(project_requirements: list[str]) -> list[str]:
    """The sorted, de-duplicated requirements of an environment (SDK needs + the project's)."""
    for req in project_requirements:
        if req.strip() and req.split()[0] in ("-r", "-c", "-e", "--requirement", "--constraint", "--editable"):
            raise StepFailed(
                f"requirement line {req!r} is not supported in a build; list the packages themselves "
                "(main/requirements.txt or mallard.yaml build.python_requirements)"
            )
    wanted = (*sdk_requirements(), *TEST_REQUIREMENTS, *project_requirements)
    return sorted({r.strip() for r in wanted if r.strip()})


def environment_key(*, flavour: str, sdk: SdkWheel, requirements: list[str]) -> str:
    """sha256 of the Python version, the SDK version and the sorted requirements."""
    payload = {
        "flavour": flavour,
        "python": f"{platform.python_implementation()}-{platform.python_version()}-{platform.machine()}",
        "sdk": sdk.version_id,
        "requirements": requirements,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class VirtualEnvironments:
    """Ready virtualenvs under `root/<key>/`, one per key, created on first use."""

    def __init__(self, root: Path, *, python: str = sys.executable) -> None:
        self.root = root
        self.python = python

    def ensure(
        self,
        *,
        requirements: list[str],
        sdk: SdkWheel,
        log: BuildLog,
        cancel: CancelToken,
        deadline: float,
        env: dict[str, str],
    ) -> tuple[Path, bool]:
        """(environment directory, True if it was already there)."""
        key = environment_key(flavour="venv", sdk=sdk, requirements=requirements)
        venv = self.root / key
        ready = venv / ".mallard-ready"
        with file_lock(self.root / f"{key}.lock", cancel, deadline):
            if ready.is_file():
                log.line(f"reusing the ready environment {key[:12]}")
                return venv, True
            log.line(f"creating environment {key[:12]} ({len(requirements)} requirements)")
            shutil.rmtree(venv, ignore_errors=True)  # a half-made one from a crash or cancel
            try:
                run_step(
                    [self.python, "-m", "venv", venv],
                    title="creating the virtualenv",
                    cwd=self.root,
                    env=env,
                    log=log,
                    cancel=cancel,
                    deadline=deadline,
                )
                req_file = venv / "mallard-requirements.txt"
                req_file.write_text("\n".join(requirements) + "\n")
                pip: list[str | Path] = [
                    venv / "bin" / "python",
                    "-m",
                    "pip",
                    "install",
                    "--no-input",
                    "--progress-bar",
                    "off",
                ]
                run_step(
                    [*pip, "-r", req_file],
                    title="pip install of the project's requirements",
                    cwd=self.root,
                    env=env,
                    log=log,
                    cancel=cancel,
                    deadline=deadline,
                )
                run_step(
                    [*pip, "--no-deps", sdk.path],
                    title="pip install of the Mallard SDK",
                    cwd=self.root,
                    env=env,
                    log=log,
                    cancel=cancel,
                    deadline=deadline,
                )
                ready.write_text(
                    json.dumps({"requirements": requirements, "sdk": sdk.version_id, "wheel": sdk.path.name})
                )
            except BaseException:
                shutil.rmtree(venv, ignore_errors=True)
                raise
        return venv, False


class Wheelhouses:
    """Ready wheelhouses under `root/<key>/` for offline installs inside a Docker build."""

    def __init__(self, root: Path, *, python: str = sys.executable) -> None:
        self.root = root
        self.python = python

    @staticmethod
    def key(*, requirements: list[str], sdk: SdkWheel, base_image_id: str) -> str:
        return environment_key(flavour=f"wheelhouse:{base_image_id}", sdk=sdk, requirements=requirements)

    def ensure(
        self,
        *,
        key: str,
        requirements: list[str],
        sdk: SdkWheel,
        log: BuildLog,
        cancel: CancelToken,
        deadline: float,
        env: dict[str, str],
    ) -> tuple[Path, bool]:
        house = self.root / key
        ready = house / ".mallard-ready"
        with file_lock(self.root / f"{key}.lock", cancel, deadline):
            if ready.is_file():
                log.line(f"reusing the ready wheelhouse {key[:12]}")
                return house, True
            log.line(f"preparing wheelhouse {key[:12]} ({len(requirements)} requirements)")
            shutil.rmtree(house, ignore_errors=True)
            try:
                wheels = house / "wheels"
                wheels.mkdir(parents=True)
                (house / "requirements.txt").write_text("\n".join(requirements) + "\n")
                run_step(
                    [
                        self.python,
                        "-m",
                        "pip",
                        "wheel",
                        "--no-input",
                        "--progress-bar",
                        "off",
                        "-w",
                        wheels,
                        "-r",
                        house / "requirements.txt",
                    ],
                    title="pip wheel of the project's requirements",
                    cwd=house,
                    env=env,
                    log=log,
                    cancel=cancel,
                    deadline=deadline,
                )
                shutil.copy2(sdk.path, wheels / sdk.path.name)
                ready.write_text(
                    json.dumps({"requirements": requirements, "sdk": sdk.version_id, "wheel": sdk.path.name})
                )
            except BaseException:
                shutil.rmtree(house, ignore_errors=True)
                raise
        return house, False
